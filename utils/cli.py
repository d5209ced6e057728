"""The command line of every stage script: parse into the stage's typed arguments, call the library function.

A method folder's ``train.py`` is, apart from its docstring (its --help text), one line:

    script(__file__, "train", __doc__)

The method is the one registered under the script's folder (``cifar/l1-norm-pruning``); its options for the
stage (``Method.TrainHparams``, ``Hparams``, ...) become flags next to the shared ones, and so do the options of
the architectures it trains (``--width`` for the VGGs, ``--detach-shortcut`` for the L1 ResNet, ...): an option
of another architecture than --arch is refused in one line. The method's recipe sets the defaults
(``Method.defaults``) and its reference spellings are accepted (``arch_aliases``, ``flag_aliases``).
"""
import argparse
import importlib
import json
import os
import sys
from dataclasses import asdict, dataclass, fields
from dataclasses import field as dc_field
from typing import Any

from models import model_entry
from utils.errors import UserError, run_main
from utils.hparams import OneLineParser, add_arguments, from_namespace, named
from utils.methods import ROOT, ChannelMethod, MaskMethod, get_method
from utils import stages


def _stage_table():
    from utils import lottery
    return {
        "train": ((stages.ModelArgs, stages.DataArgs, stages.TrainArgs), stages.train, {}),
        "prune": ((stages.PruneArgs, stages.EvalDataArgs), stages.prune, {}),
        "finetune": ((stages.FinetuneArgs, stages.DataArgs, stages.TrainArgs), stages.finetune,
                     stages.FINETUNE_DEFAULTS),
        "scratch": ((stages.ScratchArgs, stages.DataArgs, stages.TrainArgs), stages.scratch, stages.SCRATCH_DEFAULTS),
        "ticket": ((lottery.TicketArgs, stages.DataArgs, stages.TrainArgs), lottery.ticket, lottery.TICKET_DEFAULTS),
    }


def stage_classes(method, stage):
    """The stage's argument dataclasses for ``method``: an ImageFolder method (ImageNet) reads its data with the
    ImageNet data arguments (--loader, --workers, --input-size, --augment)."""
    classes, _, _ = _stage_table()[stage]
    if not getattr(method, "image_folder", False):
        return classes
    swap = {stages.DataArgs: stages.ImageDataArgs, stages.EvalDataArgs: stages.ImageEvalDataArgs}
    return tuple(swap.get(c, c) for c in classes)


def method_of_script(path):
    """The method registered under a script's folder (its key is the folder, relative to the repository)."""
    return get_method(os.path.relpath(os.path.dirname(os.path.abspath(path)), ROOT).replace(os.sep, "/"))


def _arch_choices(method):
    return sorted(set(method.archs) | set(method.arch_aliases))


def _option_classes(method):
    """{options dataclass: [archs]} of the architectures the method supports."""
    out = {}
    for arch in method.archs:
        cls = model_entry(arch).options
        if cls is not None:
            out.setdefault(cls, []).append(arch)
    return out


def _option_strings(parser, dest):
    return [s for a in parser._actions if a.dest == dest for s in a.option_strings]


def build(method, stage, description):
    """(parser, argument classes, {architecture option field: (its flags, the archs that have it)})."""
    _, _, base_defaults = _stage_table()[stage]
    classes = stage_classes(method, stage)
    defaults = {**base_defaults, **method.defaults.get(stage, {})}
    parser = OneLineParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    added = set()
    for cls in classes:
        add_arguments(parser, cls, defaults, title=cls.__name__, aliases=method.flag_aliases)
        added |= set(cls.__dataclass_fields__)
    if stage == "train":
        arch_action = next(a for a in parser._actions if a.dest == "arch")
        arch_action.choices = _arch_choices(method)
        arch_action.default = defaults.get("arch", next(iter(method.archs)))
    if stage == "prune" and isinstance(method, ChannelMethod) and any(model_entry(a).selection for a in method.archs):
        add_arguments(parser, stages.CompactOption, defaults)  # only where a network can be made compact
    if stage == "prune" and isinstance(method, MaskMethod):
        add_arguments(parser, stages.MaskPruneArgs, defaults)
    option_fields = {}
    for cls, archs in _option_classes(method).items():
        # the stages that read a checkpoint need only what rebuilds one without a spec (the reference's)
        added |= set(add_arguments(parser, cls, defaults, title=f"options of --arch {', '.join(archs)}", skip=added,
                                   only_existing=stage != "train"))
        for name in cls.__dataclass_fields__:
            if _option_strings(parser, name):
                option_fields.setdefault(name, (_option_strings(parser, name), []))[1].extend(archs)
    own = method.hparams_for(stage)
    if own.__dataclass_fields__:
        add_arguments(parser, own, defaults, title=f"{method.name} options", aliases=method.flag_aliases, skip=added)
    return parser, classes, option_fields


def parse(method, stage, description, argv):
    """The stage's arguments as dataclasses: ([stage classes' instances], architecture options or None, the
    method's options, extra keyword arguments of the stage function)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, classes, option_fields = build(method, stage, description)
    ns = parser.parse_args(argv)
    # the method's spelling of --arch (slimming's 'resnet'; SFP's 'resnet56' = resnet_sfp, depth 56)
    arch, depth = getattr(ns, "arch", None), getattr(ns, "depth", None)
    if depth is not None and not named(argv, _option_strings(parser, "depth")):
        # the default depth goes with the default arch; another --arch brings its own (SFP's resnet20: 20)
        arch_action = next((a for a in parser._actions if a.dest == "arch"), None)
        if arch_action is None or arch != arch_action.default:
            depth = None
    if arch is not None:
        arch, depth = stages.resolve_alias(method, arch, depth)
        entry = model_entry(arch)
        ns.arch, ns.depth = entry.name, depth
        if depth is not None and depth not in entry.depths:  # the first thing wrong is the first reported
            raise UserError(f"--depth {depth} is not available for --arch {entry.name} "
                            f"(choose from {', '.join(map(str, entry.depths))})")
    chosen = model_entry(arch).options if arch is not None else None
    for name, (strings, archs) in option_fields.items():
        if named(argv, strings) and (chosen is None or name not in chosen.__dataclass_fields__):
            flag = next(s for s in strings if named(argv, [s]))
            where = f"not {arch}" if arch is not None else "with --arch (for a checkpoint without a spec)"
            raise UserError(f"{flag} applies to --arch {', '.join(sorted(set(archs)))}, {where}")
    # a default that depends on another option (SFP: --pretrained makes the LR default 0.001)
    for name, changes in method.defaults_when.get(stage, {}).items():
        if getattr(ns, name, None) not in (None, False):
            for dest, value in changes.items():
                if not named(argv, _option_strings(parser, dest)):
                    setattr(ns, dest, value)
    parsed = [from_namespace(cls, ns) for cls in classes]
    options = _options(chosen, ns)
    own = from_namespace(method.hparams_for(stage), ns)
    extra = {}
    if stage == "prune" and isinstance(method, ChannelMethod):
        extra["compact"] = getattr(ns, "compact", False)
    if stage == "prune" and isinstance(method, MaskMethod):
        extra["empty_ok"] = ns.allow_empty_layers
    return parsed, options, own, extra


def _options(cls, ns):
    """The chosen architecture's options from the parsed flags (fields a stage does not offer keep their
    defaults)."""
    if cls is None:
        return None
    from dataclasses import MISSING, fields
    values = {}
    for f in fields(cls):
        if hasattr(ns, f.name):
            values[f.name] = getattr(ns, f.name)
        elif f.default is MISSING:
            values[f.name] = f.default_factory()
    return cls(**values)


def given(cls, **values):
    """An instance of dataclass ``cls`` that remembers which fields were set explicitly (``command`` then shows
    them even where they equal the script's default)."""
    obj = cls(**values)
    obj._given = frozenset(values)
    return obj


def command(method, stage, parsed, options=None, hparams=None, **extra):
    """The script command (a list: script path, flags) that runs the same stage as the library call with these
    arguments: the flags that differ from the script's defaults or were set explicitly (``given``), --save last.
    For logs and dry runs; drivers call the library, not this."""
    parser, _, _ = build(method, stage, "")
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    argv, save = [], None
    values = [(f.name, getattr(obj, f.name), f.name in getattr(obj, "_given", ()))
              for obj in [*parsed, options, hparams] if obj is not None for f in fields(obj)]
    values += [(k, v, False) for k, v in extra.items()]
    for name, value, explicit in values:
        action = actions.get(name)
        if action is None or value is None:
            continue
        if name == "save":
            save = value
            continue
        if value == action.default and not explicit:
            continue
        flag = next(s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-"))
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    if save is not None:
        argv += ["--save", str(save)]
    return [os.path.join(ROOT, *method.key.split("/"), f"{stage}.py")] + argv


def args_for(cls, method, stage, **values):
    """``cls`` (a stage argument dataclass) with the script's defaults for that stage (the method's recipe: SFP's
    200 epochs, Nesterov, ...) and ``values`` set explicitly, as the script would parse them."""
    _, _, base = _stage_table()[stage]
    defaults = {**base, **method.defaults.get(stage, {})}
    obj = cls(**{**{k: v for k, v in defaults.items() if k in cls.__dataclass_fields__}, **values})
    obj._given = frozenset(values)
    return obj


def given_again(cls, record):
    obj = cls(**record["values"])
    obj._given = frozenset(record.get("given", ()))
    return obj


@dataclass
class Call:
    """One stage of one method with its typed arguments: what a driver runs (in this process with ``run``, or in a
    worker process: ``python -m utils.cli`` reads ``to_json()`` on stdin), and shows (``command``)."""
    stage: str
    method: str                     # the method's key (its folder)
    args: tuple                     # the stage's argument dataclasses, in the order of the stage function
    hparams: Any = None             # the method's options for the stage
    options: Any = None             # the architecture's options
    extra: dict = dc_field(default_factory=dict)

    def _method(self):
        return get_method(self.method)

    def run(self, log=print):
        _, function, _ = _stage_table()[self.stage]
        return function(self._method(), *self.args, self.hparams, options=self.options, log=log, **self.extra)

    def command(self):
        return command(self._method(), self.stage, self.args, self.options, self.hparams, **self.extra)

    def to_json(self):
        def values(obj):
            return None if obj is None else {"class": f"{type(obj).__module__}:{type(obj).__qualname__}",
                                             "values": asdict(obj), "given": sorted(getattr(obj, "_given", ()))}
        return json.dumps({"stage": self.stage, "method": self.method, "args": [values(a) for a in self.args],
                           "hparams": values(self.hparams), "options": values(self.options), "extra": self.extra})

    @classmethod
    def from_json(cls, text):
        d = json.loads(text)
        method = get_method(d["method"])
        classes = stage_classes(method, d["stage"])
        args = tuple(given_again(c, a) for c, a in zip(classes, d["args"]))
        hparams = method.hparams_for(d["stage"])(**d["hparams"]["values"]) if d["hparams"] else None
        options = None
        if d["options"]:
            module, name = d["options"]["class"].split(":")
            options = getattr(importlib.import_module(module), name)(**d["options"]["values"])
        return cls(d["stage"], d["method"], args, hparams, options, d["extra"])


def overrides(argv, *classes, what="flags after --"):
    """{class: {field: value}} of the fields of ``classes`` that ``argv`` sets (a driver's pass-through flags,
    such as iterate.py's '-- --device cuda --amp'); a flag none of them has is a one-line error."""
    parser = OneLineParser(prog=what, add_help=False)
    for cls in classes:
        add_arguments(parser, cls)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    ns = parser.parse_args(argv)
    return {cls: {f: getattr(ns, f) for f in cls.__dataclass_fields__ if hasattr(ns, f)} for cls in classes}


def main(method, stage, description, argv=None, log=print):
    """Parse a stage script's command line and run the stage; returns its record."""
    if isinstance(method, str):
        method = get_method(method)
    parsed, options, own, extra = parse(method, stage, description, argv)
    _, function, _ = _stage_table()[stage]
    return function(method, *parsed, own, options=options, log=log, **extra)


def script(path, stage, description):
    """The whole body of a stage script: ``script(__file__, "train", __doc__)``."""
    run_main(lambda argv: main(method_of_script(path), stage, description, argv))


def _worker():
    """``python -m utils.cli``: run the Call given as JSON on stdin (a driver's worker process), reporting like the
    stage's own script would (its name in messages, its command line in summary.json)."""
    call = Call.from_json(sys.stdin.read())
    sys.argv = call.command()
    run_main(lambda argv: call.run())


if __name__ == "__main__":
    _worker()
