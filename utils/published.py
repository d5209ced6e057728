"""Published pruned architectures as the source of scratch training (the ImageNet ThiNet, regression-pruning and
Sparse Structure Selection folders of the reference ship only these): ``scratch.py --model NAME`` builds the named
network of models.imagenet.PRESETS instead of reading a pruned checkpoint, with its unpruned base network recorded
for scratch-B's FLOPs ratio.
"""
from dataclasses import make_dataclass
from typing import Optional

from utils.hparams import hp


def published_checkpoint(name, base, info):
    """(checkpoint, network) of preset ``name`` built for the dataset, with preset ``base`` as its base network."""
    from models.imagenet import create_preset
    size = dict(num_classes=info.num_classes, in_channels=info.in_channels, image_size=info.image_size)
    model = create_preset(name, **size)
    base_spec = create_preset(base, **size).spec.to_dict()
    ckpt = {"model": model.spec.to_dict(), "base_model": base_spec, "state_dict": model.state_dict(),
            "dataset": info.name, "published": name}
    return ckpt, model


def scratch_options(published, what):
    """The scratch stage's options of a folder with published architectures: ``--model NAME``."""
    return make_dataclass("PublishedScratchArgs", [("model", Optional[str], hp(
        None, f"a published {what} architecture to train from scratch, instead of --scratch CHECKPOINT",
        choices=sorted(published)))])


class PublishedArchitectures:
    """Mixin of a method whose scratch.py trains the published networks ``published``: {name on the command line:
    (preset, base preset)}."""
    published = {}

    def published_source(self, hparams, info):
        name = getattr(hparams, "model", None)
        if name is None:
            return None
        preset, base = self.published[name]
        ckpt, model = published_checkpoint(preset, base, info)
        ckpt["published"] = name
        return ckpt, model


def _published_only():
    from utils.methods import Method

    class PublishedOnly(PublishedArchitectures, Method):
        """A folder that, as the reference, trains the published networks of its method from scratch (and their
        unpruned base) without running the pruning algorithm: train.py and scratch.py, no prune.py."""

    return PublishedOnly


PublishedOnly = _published_only()
