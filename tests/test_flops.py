"""FLOP, MAC and parameter counting against the reference's recomputed sizes (reference.md 1.5, 2.13, 5.1)
and Li et al.'s Table 1, with the pruned networks produced by the real L1-norm selection rule."""
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from models import create_model, list_models
from utils.stages import scratch_budget
from utils.data import dataset_info
from utils.flops import count_flops, count_macs, count_params, model_costs
from utils.methods import choose
from utils.surgery import prune_channels


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------- the pruned cfgs
# reference.md 4.1 (written out here, compared with what the selection rule produces)
VGG16_A = [32, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M", 256, 256, 256]
R56_A = [14, 14, 14, 14, 14, 14, 14, 16, 14] + [32, 28, 28, 28, 28, 28, 28, 28, 28] + [64, 57, 57, 57, 57, 57, 57, 57, 64]
R56_B = [6, 6, 6, 6, 6, 6, 6, 16, 16] + [32, 22, 22, 22, 22, 22, 22, 32, 22] + [64, 57, 57, 57, 57, 57, 57, 57, 64]
R110_A = [8] * 17 + [16] + [32] * 18 + [64] * 18
R110_B = [8] * 17 + [16] + [32] + [19] * 17 + [64] + [44] * 17
REF_CFG = {("vgg", 16, "A"): VGG16_A, ("resnet", 56, "A"): R56_A, ("resnet", 56, "B"): R56_B,
           ("resnet", 110, "A"): R110_A, ("resnet", 110, "B"): R110_B}

# (arch, depth, classes, variant) -> (params, FLOPs) of the base and the pruned network (reference.md 2.13),
# Li et al. Table 1 MACs (3 significant digits) and scratch-B epochs (reference.md 5.1).
CASES = {
    ("vgg", 16, 10, "A"): dict(base=(14_987_722, 627_880_970), pruned=(5_397_034, 413_364_234),
                               macs=("3.13e+08", "2.06e+08"), epochs=243),
    ("vgg", 16, 100, "A"): dict(base=(15_033_892, 627_973_220), pruned=(5_443_204, 413_456_484),
                                macs=None, epochs=243),
    ("resnet", 56, 10, "A"): dict(base=(853_018, 252_572_938), pruned=(773_336, 226_390_090),
                                  macs=("1.25e+08", "1.12e+08"), epochs=178),
    ("resnet", 56, 10, "B"): dict(base=(853_018, 252_572_938), pruned=(735_712, 183_137_866),
                                  macs=("1.25e+08", "9.09e+07"), epochs=220),
    ("resnet", 110, 10, "A"): dict(base=(1_727_962, 508_925_194), pruned=(1_688_522, 428_291_338),
                                   macs=("2.53e+08", "2.13e+08"), epochs=190),
    ("resnet", 110, 10, "B"): dict(base=(1_727_962, 508_925_194), pruned=(1_168_424, 312_745_738),
                                   macs=("2.53e+08", "1.55e+08"), epochs=260),
}


def vgg_macs(cfg, classes, size=32, cin=3):
    """Li et al.'s FLOPs of the L1 VGG, by hand: 3x3 convs (4 max-pools) plus the 512-wide head."""
    total = 0
    for v in cfg:
        if v == "M":
            size //= 2
        else:
            total += 9 * cin * v * size * size
            cin = v
    return total + cin * 512 + 512 * classes


def resnet_macs(cfg, classes, size=32):
    n = len(cfg) // 3
    total = 9 * 3 * 16 * size * size
    inp = 16
    for s, planes in enumerate((16, 32, 64)):
        for i in range(n):
            if s > 0 and i == 0:
                size //= 2
            w = cfg[s * n + i]
            total += 9 * inp * w * size * size + 9 * w * planes * size * size
            inp = planes
    return total + 64 * classes


def hand_macs(model):
    if model.spec.arch == "vgg":
        return vgg_macs(model.cfg, model.spec.num_classes)
    return resnet_macs(model.cfg, model.spec.num_classes)


_PRUNED = {}


def l1_pruned(arch, depth, classes, variant):
    """(base, pruned) from the real selection rule on a random-weight network (cached per module)."""
    key = (arch, depth, classes, variant)
    if key not in _PRUNED:
        torch.manual_seed(depth + classes + ord(variant))
        base = create_model(arch, depth, num_classes=classes)
        keep = choose("cifar/l1-norm-pruning", base, variant=variant)
        _PRUNED[key] = (base, prune_channels(base, keep))
    return _PRUNED[key]


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("key", list(CASES), ids=lambda k: f"{k[0]}{k[1]}-c{k[2]}-{k[3]}")
def test_l1_selection_gives_reference_cfg(key):
    arch, depth, classes, variant = key
    base, pruned = l1_pruned(*key)
    assert pruned.cfg == REF_CFG[(arch, depth, variant)]
    assert pruned.spec.cfg == pruned.cfg
    assert base.cfg == create_model(arch, depth).cfg  # the base stays untouched


@pytest.mark.parametrize("key", list(CASES), ids=lambda k: f"{k[0]}{k[1]}-c{k[2]}-{k[3]}")
def test_params_and_flops_golden(key):
    base, pruned = l1_pruned(*key)
    case = CASES[key]
    assert (count_params(base), count_flops(base)) == case["base"]
    assert (count_params(pruned), count_flops(pruned)) == case["pruned"]
    costs = model_costs(pruned)
    assert (costs["params"], costs["flops"]) == case["pruned"]
    assert costs["macs"] == count_macs(pruned)


@pytest.mark.parametrize("key", [k for k in CASES if CASES[k]["macs"]], ids=lambda k: f"{k[0]}{k[1]}-{k[3]}")
def test_macs_match_li_et_al_table1(key):
    base, pruned = l1_pruned(*key)
    macs_base, macs_pruned = count_macs(base), count_macs(pruned)
    assert macs_base == hand_macs(base)
    assert macs_pruned == hand_macs(pruned)
    assert (f"{macs_base:.2e}", f"{macs_pruned:.2e}") == CASES[key]["macs"]


@pytest.mark.parametrize("arch,depth,classes,golden", [
    ("vgg_slim", 19, 10, (20_035_018, 797_304_842)),
    ("preresnet", 164, 10, (1_711_338, 504_759_306)),
    ("densenet", 40, 10, (1_068_658, 573_052_330)),
])
def test_slimming_networks_golden(arch, depth, classes, golden):
    model = create_model(arch, depth, num_classes=classes)
    assert (count_params(model), count_flops(model)) == golden


@pytest.mark.parametrize("arch", list_models(family="cifar"))  # ImageNet zoo: test_imagenet_models.py
@pytest.mark.parametrize("geometry", ["default-32x32x3", "small-28x28x1"])
def test_macs_agree_with_torch_flop_counter(arch, geometry):
    small = {"vgg": 11, "vgg_slim": 13, "resnet": 20, "preresnet": 20, "densenet": 40, "resnet_wl": 20, "resnet_sfp": 20,
             "resnet_ekg": 20}
    small.update({**{f"vgg{d}{bn}": d for d in (11, 13, 16, 19) for bn in ("", "_bn")},  # weight-level models
                  "preresnet_wl": 20, "densenet_wl": 40, "densenet_bc": 40})
    if geometry.startswith("default"):
        model = create_model(arch)
        x = torch.zeros(1, 3, 32, 32)
    else:
        model = create_model(arch, small[arch], num_classes=7, in_channels=1, image_size=28)
        x = torch.zeros(1, 1, 28, 28)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    macs = count_macs(model)
    assert macs > 0
    assert counter.get_total_flops() == 2 * macs


def test_macs_agree_with_torch_flop_counter_on_pruned_networks():
    for key in [("vgg", 16, 10, "A"), ("resnet", 56, 10, "B")]:
        _, pruned = l1_pruned(*key)
        pruned.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            pruned(torch.zeros(1, 3, 32, 32))
        assert counter.get_total_flops() == 2 * count_macs(pruned)


class _Toy(nn.Module):
    """Every module kind the reference's counter knows, plus one ReLU called twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)        # 8x8 out
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)                                 # -> 4x4
        self.up = nn.Upsample(scale_factor=2)                       # -> 8x8
        self.avg = nn.AvgPool2d(4)                                  # -> 2x2
        self.conv2 = nn.Conv2d(4, 6, 1, stride=2, bias=False)       # -> 1x1
        self.fc = nn.Linear(6, 5)
        self.bn1d = nn.BatchNorm1d(5)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        x = self.relu(self.pool(x))                                 # same ReLU module, second call
        x = self.conv2(self.avg(self.up(x)))
        return self.bn1d(self.fc(torch.relu(x).flatten(1)))


def test_reference_flop_rules_per_module():
    toy = _Toy().train()
    expected = ((2 * 27 + 1) * 4 * 64       # conv with bias
                + 2 * 4 * 64                # BatchNorm2d: 2 x input numel
                + 4 * 64 + 4 * 16           # ReLU, counted at each of its two calls
                + 2 * 2 * 4 * 16            # MaxPool2d(2): k^2 x output numel
                + 12 * 4 * 64               # Upsample: 12 x output numel
                + 4 * 4 * 4 * 4             # AvgPool2d(4) on 8x8 -> 2x2
                + 2 * 4 * 6 * 1             # 1x1 conv, stride 2, no bias
                + 2 * 30 + 5)               # Linear; BatchNorm1d and functional relu are free
    assert count_flops(toy, image_size=8, in_channels=3) == expected
    assert count_macs(toy, image_size=8, in_channels=3) == 27 * 4 * 64 + 4 * 6 + 30
    assert toy.training  # counting did not switch the model to eval mode


def test_nonzero_rule_counts_only_nonzero_weights():
    torch.manual_seed(5)
    model = create_model("resnet", 20)
    dense = count_flops(model)
    assert count_flops(model, rule="nonzero") == dense  # random weights: no zeros, no conv bias
    conv = model.layer2[0].conv1  # 16 -> 32, stride 2: 16x16 output positions
    with torch.no_grad():
        flat = conv.weight.view(-1)
        half = flat.numel() // 2
        flat[torch.randperm(flat.numel())[:half]] = 0
    assert count_flops(model) == dense  # the dense rule ignores zeros
    assert count_flops(model, rule="nonzero") == dense - 2 * half * 16 * 16
    with pytest.raises(ValueError):
        count_flops(model, rule="sparse")


def test_nonzero_rule_with_bias():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=True)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[0] = 0  # one whole filter zero: its bias still costs one add per output position
    assert count_flops(conv, image_size=5, in_channels=2, rule="nonzero") == (2 * 2 * 18 + 3) * 25
    assert count_flops(conv, image_size=5, in_channels=2) == (2 * 18 + 1) * 3 * 25


def test_counting_leaves_the_model_untouched():
    model = create_model("vgg", 11).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model)
    count_macs(model)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("key", list(CASES), ids=lambda k: f"{k[0]}{k[1]}-c{k[2]}-{k[3]}")
def test_scratch_b_epochs(key):
    arch, depth, classes, variant = key
    base, pruned = l1_pruned(*key)
    info = dataset_info("cifar10" if classes == 10 else "cifar100")
    epochs, record = scratch_budget({"base_model": base.spec.to_dict()}, pruned, info, 160)
    assert epochs == CASES[key]["epochs"]
    assert (record["flops_base"], record["flops_pruned"]) == (CASES[key]["base"][1], CASES[key]["pruned"][1])
    assert record["flops_ratio"] == pytest.approx(CASES[key]["base"][1] / CASES[key]["pruned"][1])
    # a reference pruned.pth.tar has no base spec: the default network of that arch/depth is the base
    assert scratch_budget({"cfg": pruned.cfg}, pruned, info, 160)[0] == CASES[key]["epochs"]
    assert scratch_budget({"base_model": base.spec.to_dict()}, pruned, info, 100)[0] == \
        int(100 * CASES[key]["base"][1] / CASES[key]["pruned"][1])


def test_scratch_b_epochs_resnet_cifar100():
    """reference.md 5.1: the scratch-B budgets are the same for CIFAR-100."""
    info = dataset_info("cifar100")
    for (arch, depth, _, variant), case in CASES.items():
        if arch != "resnet":
            continue
        torch.manual_seed(depth)
        base = create_model(arch, depth, num_classes=100)
        pruned = prune_channels(base, choose("cifar/l1-norm-pruning", base, variant=variant))
        assert scratch_budget({"base_model": base.spec.to_dict()}, pruned, info, 160)[0] == case["epochs"]
