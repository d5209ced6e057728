"""Pruning methods: typed classes in a namespaced registry.

A method lives in ``<family>/<method>/method.py`` and registers one class, keyed by its folder:

    @register_method
    class L1Norm(ChannelMethod):
        key = "cifar/l1-norm-pruning"          # the folder; a second method with the same key is an error
        name = "l1-norm"                        # what records and tables call it
        paper = "Li et al., ..."
        archs = {"vgg": (16,), "resnet": (56, 110)}
        Hparams = L1Hparams                     # dataclass: prune.py's options (its flags)

        def select(self, model, ctx):           # -> {cfg index: kept channel positions}
            ...

Kinds: ``ChannelMethod`` (choose channels, remove them by surgery, optionally ``reconstruct`` the next layer's
weights), ``MaskMethod`` (choose weights to zero, keep the network's size) and ``SearchMethod`` (score candidate
sub-networks and keep the best). ``select`` receives a ``PruneContext``: the method's typed hyper-parameters, the
device, the distributed info and a factory for a seeded calibration loader. What a method changes in training
(a sparsity sub-gradient, soft zeroing, a mask, another objective or optimizer) it returns from the stage hooks,
all of which take one ``StageContext``.
"""
import glob
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import torch

from utils.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("train", "prune", "finetune", "scratch")


@dataclass
class NoHparams:
    """A method without options for that stage."""


# ------------------------------------------------------------------------------------------- contexts
@dataclass
class PruneContext:
    """What a selection rule may use besides the model: its options, where to compute, and calibration data."""
    hparams: Any
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dist: Any = None                  # utils.dist.DistInfo
    dataset: Optional[str] = None     # name and folder of the training images, for calibration
    data: Optional[str] = None
    folder: Any = None                # how an ImageFolder dataset is read (utils.stages.FolderOptions)
    seed: int = 0
    log: Callable = print
    records: dict = field(default_factory=dict)  # what a rule measured along the way, for prune.json
    save: Optional[str] = None        # prune.py's --save: where a rule may keep resumable state
    files: dict = field(default_factory=dict)    # {file name: object} written into --save with pruned.pth.tar

    def training_set(self):
        """(training images, DatasetInfo of the network's input) of --dataset / --data."""
        import dataclasses
        from utils.data import dataset_info, is_folder_dataset, load_dataset
        if self.dataset is None:
            raise UserError("this method needs training images: give --dataset (and --data)")
        info = dataset_info(self.dataset)
        train, _ = load_dataset(self.dataset, self.data)
        if is_folder_dataset(train):
            info = dataclasses.replace(info, image_size=getattr(self.folder, "input_size", info.image_size))
        return train, info

    def loader_of(self, images, info, batch_size, train_transform=False, seed=None):
        """A loader over ``images`` (a dataset's ``select``), in their order, on ``device``, with the test-time
        transform (normalisation only) unless ``train_transform``."""
        from utils.data import make_loader
        return make_loader(images, batch_size, train=train_transform, info=info, device=self.device,
                           seed=self.seed if seed is None else seed, folder=self.folder)

    def calibration_loader(self, n_images, batch_size=100, train_transform=False, seed=None):
        """A loader over ``n_images`` training images drawn without replacement by a seeded permutation (the same
        images for the same seed), on ``device``, with the test-time transform (normalisation only) unless
        ``train_transform``. ``n_images`` above the training set's size takes all of it, with a note."""
        if n_images < 1:
            raise UserError(f"--calib-images {n_images}: must be at least 1")
        train, info = self.training_set()
        total = len(train)
        if n_images > total:
            self.log(f"note: --calib-images {n_images} is more than the {total:,} training images; using all of them")
            n_images = total
        g = torch.Generator().manual_seed(self.seed if seed is None else seed)
        index = torch.randperm(total, generator=g)[:n_images].sort().values
        return self.loader_of(train.select(index), info, batch_size, train_transform, seed)


@dataclass
class StageContext:
    """Everything a method may need to set up a training stage, in one object (one signature for every hook):
    the stage ('train', 'finetune', 'scratch-E', 'scratch-B', 'ticket'), the method's typed options for it, the
    run's data and training arguments, the network being trained and, after pruning, the checkpoint it comes
    from."""
    stage: str
    hparams: Any
    data: Any                          # utils.stages.DataArgs
    train: Any                         # utils.stages.TrainArgs
    info: Any                          # utils.data.DatasetInfo
    model: Any = None
    arch: Optional[str] = None         # train.py: the network to build (model name, depth)
    depth: Optional[int] = None
    source: Optional[dict] = None      # the pruned (or trained) checkpoint a fine-tune / scratch run reads
    source_path: Optional[str] = None
    masks: Optional[dict] = None
    log: Callable = print
    loaded: dict = field(default_factory=dict)  # what a method's validate hook read for its later hooks (EKG's bank)


# ------------------------------------------------------------------------------------------- methods
class Method:
    key: str = ""                      # the folder, e.g. cifar/l1-norm-pruning
    name: str = ""                     # the method, e.g. l1-norm
    paper: str = ""
    archs: dict = {}                   # model name -> depths train.py builds
    prune_archs: dict = None           # model name -> depths the rule is defined for (default: archs)
    arch_aliases: dict = {}            # the reference's spellings of --arch: model name, or (model name, depth)
    flag_aliases: dict = {}            # the reference's spellings of flags: {field name: ("--learning_rate",)}
    Hparams: type = NoHparams          # prune.py's options (the selection rule)
    TrainHparams: type = NoHparams     # train.py's own options (e.g. slimming's -sr --s)
    FinetuneHparams: type = NoHparams
    ScratchHparams: type = NoHparams
    defaults: dict = {}                # per stage: flag defaults of the method's recipe, {"train": {"epochs": 200}}
    defaults_when: dict = {}           # per stage: {option: {flag: default}} when that option is set
    masked = False                     # fine-tune / scratch keep the pruned checkpoint's mask (MaskHook)
    image_folder = False               # reads ImageFolder trees (ImageNet): its scripts take the ImageNet data flags

    def hparams_for(self, stage):
        return {"train": self.TrainHparams, "prune": self.Hparams, "finetune": self.FinetuneHparams,
                "scratch": self.ScratchHparams}.get(stage, NoHparams)

    def check_arch(self, spec, path, flag="--model"):
        archs = self.prune_archs if self.prune_archs is not None else self.archs
        if spec.arch not in archs or spec.depth not in archs[spec.arch]:
            supported = "; ".join(f"{a}: {', '.join(map(str, d))}" for a, d in archs.items())
            raise UserError(f"{flag} {path}: {self.name} pruning is defined for {supported}, "
                            f"not {spec.arch}-{spec.depth}")

    # ------------------------------------------------------------ stage hooks: one StageContext each
    penalized_run = "sparsity"  # train.py's run under the method's own penalty (trains_penalized) is named so

    def trains_penalized(self, stage):
        """Whether train.py trains under the method's own penalty (a sparsity term, soft pruning), not plainly."""
        return False

    def stage_name(self, stage):
        """The run's name in its records: train.py's is 'baseline', or ``penalized_run`` when it trains under the
        method's penalty, since the convergence check of a study (utils.results.check_convergence) holds only plain
        baselines to its accuracy bar; the other stages are named by the stage."""
        if stage.stage == "train":
            return self.penalized_run if self.trains_penalized(stage) else "baseline"
        return stage.stage

    def validate(self, stage):
        """Check the stage's options before anything is written (raise UserError)."""

    def init_model(self, model, stage):
        """Edit a freshly built network before training (load weights, re-draw a sparse init)."""

    def source_masks(self, stage):
        """The mask a fine-tune / scratch run keeps ({parameter name: bool}), or None for a network trained
        whole. A masked method's: the pruned checkpoint's ``masks``, or the nonzero pattern of its conv weights
        (the reference's files)."""
        if not self.masked:
            return None
        from utils.masks import checkpoint_masks
        flag = "--refine" if stage.stage == "finetune" else "--scratch"
        return checkpoint_masks(stage.source, stage.model, stage.source_path, flag)

    def train_hooks(self, stage):
        """Engine hooks of the stage (utils.engine.Hook)."""
        return []

    def train_loader(self, stage, loader):
        """The stage's training batches: ``loader`` itself, or what the method makes of it (EKG's two views with
        the memory bank's teacher logits)."""
        return loader

    def objective(self, stage):
        """The training objective, ``(trainer, inputs, outputs, targets) -> loss``; None = cross-entropy."""
        return None

    def optimizer(self, stage):
        """``(module, TrainConfig) -> optimizer``; None = SGD from the run's flags."""
        return None

    def published_source(self, hparams, info):
        """(checkpoint, network) of a published architecture that the stage's options name instead of a checkpoint
        (scratch.py --model NAME of the ImageNet ThiNet / regression-pruning / SSS folders), or None."""
        return None

    def scratch_budget(self, stage, base_epochs):
        """(epochs, record) of scratch-B; None = int(E x FLOPs(base) / FLOPs(pruned)), dense FLOPs (nonzero
        FLOPs for a masked method)."""
        return None

    def budget_preview(self, flops_base, flops_pruned):
        """prune.json entries announcing the scratch-B budget of the method's recipe (ImageNet: epochs and LR step),
        or None."""
        return None

    def check_source(self, ckpt, model, path):
        """Warn (warnings.warn) when the checkpoint to prune does not look like what the rule expects."""

    def describe(self, model, result, ctx):
        """Extra prune.json entries (a threshold, per-layer statistics)."""
        return {}


class ChannelMethod(Method):
    """Chooses channels to keep per channel group; surgery removes the others."""
    save_masked = False  # prune.py also writes masked.pth.tar, the full-size masked network (the mask implementation)

    def prune_network(self, model, ctx):
        """(keep, pruned network): ``select``, then ``shrink`` and ``reconstruct``. A rule that prunes layer by
        layer, each choice made on the network pruned so far (ThiNet), overrides this instead."""
        keep = self.select(model, ctx)
        return keep, self.reconstruct(model, self.shrink(model, keep, ctx), keep, ctx)

    def select(self, model, ctx):
        """{cfg index: kept channel positions} of the groups that lose channels."""
        raise NotImplementedError

    def shrink(self, model, keep, ctx):
        from utils.surgery import prune_channels
        return prune_channels(model, keep)

    def reconstruct(self, model, pruned, keep, ctx):
        """Rewrite the pruned network's weights after surgery (ThiNet's least squares); default: as is."""
        return pruned

    def masked_model(self, model, keep, ctx):
        """The mask-implementation view whose accuracy prune.json also reports (acc_masked), or None."""
        return None


class MaskMethod(Method):
    """Chooses weights to zero; the network keeps its size and fine-tune / scratch keep the mask."""
    masked = True

    def init_model(self, model, stage):
        """Scratch runs re-draw the surviving weights with the reference's sparsity-scaled He init (reference.md
        5.3: N(0, sqrt(2 / n)), n = nnz(mask) / C_in), then mask them."""
        if stage.stage.startswith("scratch") and stage.masks is not None:
            from utils.masks import sparse_reinit
            sparse_reinit(model, stage.masks)

    def select(self, model, ctx, masks=None):
        """{parameter name: bool tensor, True = kept}; ``masks`` = those the checkpoint already carries."""
        raise NotImplementedError


class SearchMethod(ChannelMethod):
    """Scores candidate sub-networks (each a keep dict) and keeps the best: ``candidates`` proposes them,
    ``score`` rates one (higher is better). Ties go to the earlier candidate."""

    def candidates(self, model, ctx):
        raise NotImplementedError

    def score(self, model, keep, ctx):
        raise NotImplementedError

    def select(self, model, ctx):
        best, best_score = None, None
        for keep in self.candidates(model, ctx):
            value = self.score(model, keep, ctx)
            if best_score is None or value > best_score:
                best, best_score = keep, value
        if best is None:
            raise UserError(f"{self.name}: no candidate sub-network to choose from")
        return best


# ------------------------------------------------------------------------------------------- registry
_METHODS = {}


def register_method(cls):
    """Class decorator: registers one instance under ``cls.key``; a key registered twice is an error."""
    if not cls.key or not cls.name:
        raise ValueError(f"{cls.__name__}: a method needs a key (its folder) and a name")
    if cls.key in _METHODS and inspect.getfile(type(_METHODS[cls.key])) != inspect.getfile(cls):
        raise ValueError(f"method key {cls.key!r} is registered twice ({inspect.getfile(type(_METHODS[cls.key]))} "
                         f"and {inspect.getfile(cls)})")
    for stage in STAGES:
        hp = cls().hparams_for(stage)
        if not (isinstance(hp, type) and hasattr(hp, "__dataclass_fields__")):
            raise ValueError(f"{cls.__name__}: the {stage} options must be a dataclass")
    _METHODS[cls.key] = cls()
    return cls


def get_method(key):
    """The method registered under ``key`` (its folder), importing that folder's method.py if needed."""
    if key not in _METHODS:
        path = os.path.join(ROOT, *key.split("/"), "method.py")
        if os.path.isfile(path):
            _load(path)
    if key not in _METHODS:
        load_methods()
    if key not in _METHODS:
        raise UserError(f"no method {key!r} (known: {', '.join(sorted(_METHODS))})")
    return _METHODS[key]


def list_methods():
    load_methods()
    return sorted(_METHODS)


_loaded = {}


def load_methods():
    for path in sorted(glob.glob(os.path.join(ROOT, "*", "*", "method.py"))):
        _load(path)


def _load(path):
    name = "rnp_method_" + os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, "_").replace("-", "_")
    if name not in _loaded:
        _loaded[name] = import_path(path, name)
    return _loaded[name]


def import_path(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so that its classes know their file (inspect) and pickle by name
    spec.loader.exec_module(module)
    return module


def choose(method, model, masks=None, **hparams):
    """What ``method``'s rule (a method or its key) chooses for ``model`` with these options, computed on the CPU
    without calibration data: a channel method's {cfg index: kept positions}, a mask method's masks."""
    method = get_method(method) if isinstance(method, str) else method
    ctx = PruneContext(hparams_of(method.Hparams, **hparams))
    if isinstance(method, MaskMethod):
        return method.select(model, ctx, masks=masks)
    return method.select(model, ctx)


def hparams_of(cls, **values):
    """An instance of the options dataclass ``cls`` from keyword values; a name it does not have is an error
    (no silently ignored typos)."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no option {unknown[0]!r} (it has {', '.join(sorted(names)) or 'none'})")
    return cls(**values)
