"""Model registry (timm style): ``@register_model`` on a constructor, ``create_model`` by name.

Every constructor takes ``depth``, ``num_classes``, ``in_channels``, ``image_size`` and ``cfg`` (per-layer
widths; None = the architecture's default for that depth) plus architecture options. The built model
carries ``model.spec``: everything needed to rebuild it, and nothing else, so a pruned network is just a
spec with smaller widths.

An entry may declare ``options``: a dataclass of the flags a user sets when training that architecture
(``--width`` of the VGGs, ``--detach-shortcut`` of the L1 ResNet, ...), each field's metadata holding its help
text, that checks its values and turns them into constructor arguments (``kwargs(arch, depth)``). Scripts offer
exactly the options of the architectures they train; generic code names no architecture.

An entry's ``family`` says which inputs it is made for: "cifar" (32 px and below, 10/100 classes) or "imagenet"
(224 px, 1000 classes, still runnable at 32-64 px); ``list_models(family)`` lists one family.
"""
import copy
import inspect
from dataclasses import dataclass, field

from errors import UserError

_REGISTRY = {}
_ALIASES = {}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: object
    depths: tuple
    default_depth: int
    description: str
    options: type = None  # dataclass of the architecture's own flags, or None
    family: str = "cifar"  # "cifar": small-image networks (32 px and below); "imagenet": the 224 px networks
    selection: bool = False  # has channel-selection layers, so its pruned network has a compact_model()


def register_model(name, depths, default_depth, aliases=(), options=None, family="cifar", selection=False):
    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, fn, tuple(depths), default_depth, (fn.__doc__ or "").strip(), options,
                                     family, selection)
        for a in aliases:
            _ALIASES[a] = name
        return fn
    return wrap


def option_kwargs(arch, depth, options):
    """Constructor arguments from an options instance of ``arch`` (None: the defaults)."""
    return {} if options is None else options.kwargs(arch, depth)



def list_models(family=None):
    """Registered names, all or those of one family ("cifar", "imagenet")."""
    return sorted(n for n, e in _REGISTRY.items() if family is None or e.family == family)


def resolve_arch(arch):
    name = _ALIASES.get(arch, arch)
    if name not in _REGISTRY:
        raise UserError(f"--arch {arch!r} is not a known model (known: {', '.join(list_models())})")
    return name


def model_entry(arch):
    return _REGISTRY[resolve_arch(arch)]


def default_cfg(arch, depth):
    return create_model(arch, depth=depth).cfg


@dataclass
class ModelSpec:
    arch: str
    depth: int
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    cfg: list = None
    options: dict = field(default_factory=dict)

    def to_dict(self):
        return {"arch": self.arch, "depth": self.depth, "num_classes": self.num_classes,
                "in_channels": self.in_channels, "image_size": self.image_size,
                "cfg": copy.deepcopy(self.cfg), "options": copy.deepcopy(self.options)}

    @classmethod
    def from_dict(cls, d):
        return cls(arch=d["arch"], depth=int(d["depth"]), num_classes=int(d["num_classes"]),
                   in_channels=int(d["in_channels"]), image_size=int(d["image_size"]),
                   cfg=copy.deepcopy(d["cfg"]), options=dict(d.get("options") or {}))


def _fn_default(fn, name):
    return inspect.signature(fn).parameters[name].default


def create_model(arch, depth=None, num_classes=None, in_channels=None, image_size=None, cfg=None, **options):
    """``arch`` built; geometry left as None takes the constructor's default (CIFAR: 10 classes, 3x32x32;
    ImageNet: 1000 classes, 3x224x224)."""
    entry = model_entry(arch)
    num_classes = _fn_default(entry.fn, "num_classes") if num_classes is None else num_classes
    in_channels = _fn_default(entry.fn, "in_channels") if in_channels is None else in_channels
    image_size = _fn_default(entry.fn, "image_size") if image_size is None else image_size
    depth = entry.default_depth if depth is None else int(depth)
    if depth not in entry.depths:
        raise UserError(f"--depth {depth} is not available for --arch {entry.name} "
                        f"(choose from {', '.join(map(str, entry.depths))})")
    model = entry.fn(depth=depth, num_classes=num_classes, in_channels=in_channels,
                     image_size=image_size, cfg=copy.deepcopy(cfg), **options)
    model.spec = ModelSpec(entry.name, depth, num_classes, in_channels, image_size,
                           copy.deepcopy(model.cfg), dict(options))
    return model


def build_from_spec(spec):
    if isinstance(spec, dict):
        spec = ModelSpec.from_dict(spec)
    return create_model(spec.arch, spec.depth, spec.num_classes, spec.in_channels, spec.image_size,
                        spec.cfg, **spec.options)


def scale_cfg(cfg, width):
    """Default widths times ``width`` (at least 1 channel); 'M' entries stay."""
    if width == 1.0:
        return list(cfg)
    return [c if isinstance(c, str) else max(1, int(round(c * width))) for c in cfg]
