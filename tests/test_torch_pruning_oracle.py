"""Our channel groups against Torch-Pruning's dependency graph (a test-only oracle): for every model of the zoo
and every channel group whose channels a conv produces, the modules Torch-Pruning changes when that conv loses
an output channel are exactly the group's (the conv and its BN lose the channel, the consumers lose the input).
Groups that pass through a channel-selection layer are ours alone: Torch-Pruning cannot express an index_select
by a buffer, so those are checked against zero-masking in test_surgery.py instead."""
import pytest
import torch
import torch.nn as nn

tp = pytest.importorskip("torch_pruning")

from models import create_model, list_models, model_entry  # noqa: E402


def smallest(arch):
    """The smallest network of ``arch``, at 32 px and 10 classes (the ImageNet ones too, at 1/8 width where they
    have a width option; SSS's smallest paper network, ResNet-26)."""
    from models import option_kwargs
    entry = model_entry(arch)
    if entry.family != "imagenet":
        return create_model(arch, min(entry.depths))
    depth = 26 if arch == "imagenet_preresnet" else min(entry.depths)
    extra = {}
    if entry.options is not None and "width" in entry.options.__dataclass_fields__:
        extra = option_kwargs(arch, depth, entry.options(width=0.125))
    return create_model(arch, depth, num_classes=10, image_size=32, **extra)


def ours(model, group):
    return {(m, "out") for m in group.out} | {(m, "in") for m in group.inp}


def theirs(model, graph, conv_name):
    names = {module: name for name, module in model.named_modules()}
    conv = model.get_submodule(conv_name)
    group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=[0])
    out = set()
    for item in group:
        name = names.get(item.dep.target.module)
        if name is None:  # an element-wise op, a reshape: no parameters of its own
            continue
        handler = getattr(item.dep.handler, "__name__", "")
        out.add((name, "out" if handler.endswith("out_channels") else "in"))
    return out


@pytest.mark.parametrize("arch", list_models())
def test_channel_groups_equal_torch_pruning_groups(arch):
    model = smallest(arch).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 32, 32))
    compared = 0
    for group in model.channel_groups():
        convs = [m for m in group.out if isinstance(model.get_submodule(m), nn.Conv2d)]
        if group.select or not convs:
            continue  # a selection layer's group (see the module docstring)
        for conv in convs:  # several writers: channels tied by residual additions (EKG's stage groups)
            assert theirs(model, graph, conv) == ours(model, group), (group.name, conv)
        compared += 1
    has_plain_groups = any(not g.select for g in model.channel_groups())
    assert compared > 0 or not has_plain_groups
    if arch in ("vgg", "vgg_slim", "resnet", "resnet_sfp", "preresnet", "resnet_ekg"):
        assert compared > 0, arch
