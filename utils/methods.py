"""Registry of pruning methods. A method module calls ``register_method`` with its selection rule and
hooks; ``load_methods`` imports every ``<family>/<method>/method.py`` so tests can walk the registry."""
import glob
import importlib.util
import os
from dataclasses import dataclass, field

_METHODS = {}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Method:
    name: str
    folder: str                      # e.g. cifar/l1-norm-pruning
    paper: str
    archs: dict                      # arch -> supported depths
    select: object                   # (model, **options) -> {cfg_index: kept channel positions}
    variants: tuple = ()
    train_hooks: object = None       # (args) -> list of engine hooks, for methods that change training
    notes: dict = field(default_factory=dict)
    # optional, for prune_main: check_source(ckpt, model, path) may warn about the source checkpoint;
    # masked(model, keep) -> the mask-implementation model whose accuracy is also reported (acc_masked);
    # describe(model, keep, **options) -> extra prune.json entries (e.g. a threshold)
    check_source: object = None
    masked: object = None
    describe: object = None
    arch_aliases: dict = field(default_factory=dict)  # the reference's --arch spellings -> our model names
    shrink: object = None  # shrink(model, keep, **options) -> the smaller model; default surgery.prune_channels


def register_method(method):
    _METHODS[method.name] = method
    return method


def get_method(name):
    load_methods()
    return _METHODS[name]


def list_methods():
    load_methods()
    return sorted(_METHODS)


def load_methods():
    for path in sorted(glob.glob(os.path.join(ROOT, "*", "*", "method.py"))):
        key = "rnp_method_" + os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, "_").replace("-", "_")
        if key not in _loaded:
            _loaded[key] = import_path(path, key)


_loaded = {}


def import_path(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
