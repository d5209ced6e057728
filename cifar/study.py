"""The reproduction study on real Fashion-MNIST, at a scale a CPU finishes: every CIFAR pruning method of this
repo, on a small VGG and a small ResNet, at two pruning ratios, over three seeds; baseline -> prune ->
fine-tune, scratch-E, scratch-B, each stage the library call of the method's script with the same arguments
(utils/cli.py's Call, run in a worker process so that stages run side by side; the equivalent command line is
logged); then the paper-style table (markdown + CSV) and plots of utils/results.py.

    python cifar/study.py --out study_runs/fashionmnist        # the whole study (hours; rerun to continue)
    python cifar/study.py --quick                              # the same study at smoke scale (minutes)
    python cifar/study.py --methods sfp weight-level --seeds 1 --dry-run     # print the commands only

Scale (default; every flag below changes it): Fashion-MNIST (28x28 grey, /usr/share/datasets/fashion-mnist), the
first --train-subset 24000 of the 60,000 training images, the first --test-subset 2000 test images, VGGs at --width
0.1875 of their channels, ResNets at --resnet-width 0.25 (stem and stages 4/8/16 instead of 16/32/64; network
slimming's PreResNet-20 at four times that, the full width; L1-norm's ResNet-56, weight-level's PreResNet-20, SFP's,
SSS's and EKG's ResNet-20 at twice that; see Settings), E = --epochs 10. That is about what it takes for every
unpruned network to converge above 88% (seed 1, one thread each, 2026-11-29): VGG-11-BN x0.125 reached 84.2% with
12,000 images x 8 epochs and 88.1% with 24,000 x 10 (too close to the bar, hence x0.1875), network slimming's VGG-11
x0.125 88.55% with s = 1e-3; ResNet-20 x0.25 89.0%, flat over its last four epochs. Full-width ResNets train at 51
(ResNet-56) to 146 (ResNet-20) images/s on one core, 5-7x slower than at x0.25, which would put the study past two
days. The budgets keep the paper's proportions: the trunk trains E epochs (the paper's 160; SFP's 200), fine-tuning
round(E x 40/160) epochs at a constant lr 0.001 (SFP: 40/200), scratch-E E epochs, and scratch-B int(E x
FLOPs(unpruned) / FLOPs(pruned)) epochs, which the scratch scripts compute from the pruned checkpoint (this driver
gives them E, never the count). Everything else is each method's own recipe (lr 0.1, batch 64, wd 1e-4, LR x0.1 at
50%/75%; SFP: batch 128, Nesterov, wd 5e-4, LR 0.01 x10 after epoch 1 then x0.2 at 30/60/80% of E, as its
1/60/120/160 of 200). --quick: E 2, 256 / 256 images, widths 0.125 / 0.25, seed 1, out study_runs/fashionmnist-quick.
This is a CPU-scale study, not the paper's setting.

Settings (method: model, ratios; the trunk is what prune.py reads; VGGs at --width, ResNets at --resnet-width):
  l1-norm           vgg16 (vgg-16 at --width): A, its only VGG configuration (Li et al. prune VGG-16 one way);
                    resnet56 (resnet-56 at 2 x --resnet-width: 8/16/32 channels; the rule is defined for 56/110
                    only): A and B. At x0.25 B keeps 1 of the 4 channels in seven of stage 1's first convs; the
                    pruned networks started at 9.7-22.5% and fine-tuning ended at 86.90%, 89.55% and 86.85% (std
                    1.54 points; A's 89.65%, 90.45%, 88.55%). At x0.5 B keeps 3 of 8. Trunk: the baseline, shared
                    by A and B.
  network-slimming  vgg11 (vgg_slim-11 at --width): 50% and 60% of the BN channels (the paper's 70% empties conv4_2
                    at x0.1875, whose strongest channel alone is then kept: seed 1 fine-tuned to 60.9% and scratch-E
                    73.5%; 60% leaves it 10 of 96); preresnet20 (preresnet-20 at 4 x --resnet-width, its full width:
                    16/32/64 channels, the bottleneck widths of the paper's PreResNet-164): 40% and 60%. At x0.5
                    (8/16/32) the pruned networks kept 2-5 channels in some layers and their scratch runs at lr 0.1
                    diverged on one seed in three, at 60% (seed 2's scratch-E: best 77.35%, final 26.55%; seed 1's
                    87.25%) and again at 50% (seed 3's: 75.65%; seeds 1-2 87.10%, 88.05%). At x0.25 the pruned
                    networks kept 1-2 channels in some layers, and their from-scratch runs at lr 0.1 stalled or not
                    by chance: scratch-E at 40% reached 71.9% (seed 1) and 84.9% (seed 2), fine-tuning at 60% 75.7%
                    and 83.1%. At x0.5 seed 3's sparse trunk diverged in its first epochs at lr 0.1 (57.95%, seeds 1
                    and 2: 88.10%, 88.30%), so this row's lr-0.1 runs (trunk, scratch-E, scratch-B) warm up linearly
                    from 0.0125 to 0.1 over their first epoch (WARMUP; He et al. warm ResNet-110 up at 0.01): seed
                    3's trunk then reached 87.85% (pilot). Trunk: sparsity training (-sr), shared by the ratios,
                    with s = the paper's (1e-4 VGG, 1e-5 PreResNet) x --slimming-s-scale 10. The study has 3,750 SGD
                    steps where the paper has 125k, so the paper's s barely moves the BN scales; x10 gives 30% of
                    the paper's accumulated push (steps x s). At 256 steps (an earlier scale) s x 489, the step
                    ratio, collapsed training (53% against 77%) and x100 cost the VGG 1.5 points; here x10 and x5
                    trained VGG-11 x0.125 to 88.55% and 88.00% (seed 1).
  sfp               resnet20 (resnet_sfp-20 at 2 x --resnet-width: 8/16/32 channels): rate 0.7 and 0.6 (30% and 40%
                    of the filters zeroed in every block's first conv, --prune-layers inner: the filters prune.py
                    drops). Trunk: SFP training from scratch at that rate (one per ratio); prune.py then drops the
                    zeroed conv_a filters, and fine-tune / scratch train that smaller network. The reference
                    soft-prunes every conv (stem and conv_b too); at x0.25 (4-16 channels) that left the soft-pruned
                    trunk at 39.5-40.1% (seed 1), erratic from epoch to epoch (from a trained baseline: 10-19% over
                    4 epochs); inner: 85.6%. At x0.25 with inner, the seeds spread too far: at rate 0.6 seed 3's
                    pruned network (3/5/10 channels in the inner convs) reached 83.20% scratch-E and 85.60%
                    scratch-B against 88.00/86.55% and 89.05/89.80% for seeds 1-2 (std 2.46 and 2.24 points; the
                    soft-pruned trunks 83.1-85.9%), hence twice the width, as for slimming's PreResNet-20 and SSS.
  thinet            vgg16 (vgg-16 at --width): 30% and 50% of the channels of conv1_1..conv4_3 removed (the paper's
                    layers; 30% is ThiNet-70's share of ResNet-50). At 70%, the first plan, conv1_x keeps 4 of 12
                    channels; seed 1's pruned network started at 17.15% and fine-tuned to 76.55% (scratch-E 83.45%;
                    at 50%: 87.75% and 86.95%); resnet20 (resnet-20): 50% of every block's first conv. Trunk:
                    the baseline, shared (VGG-16's is L1-norm's: see Layout); calibration on the study's training
                    images, no fine-tuning between layers.
  regression-pruning  vgg16 (vgg-16 at --width): 33% (about 2x fewer FLOPs) and 50% of the channels of
                    conv1_1..conv4_3 removed by LASSO + least squares; resnet20 (resnet-20): 50% of every block's first
                    conv (2x), the second conv reconstructed towards the original block output. Trunk: the baseline,
                    shared (L1-norm's VGG-16, ThiNet's ResNet-20: see Layout); 5,000 calibration images of the
                    training set (the official code's count).
  weight-level      vgg11_bn (vgg11_bn at --width): 30% and 80% of the conv weights; preresnet20
                    (preresnet_wl-20 at 2 x --resnet-width: 8/16/32 channels): 30% and 80%. At x0.25 seed 3's
                    baseline ended at 86.10% (seeds 1 and 2: 88.65%, 88.25%) and scratch-E at 80% reached 80.95%
                    and 86.05% on seeds 1 and 2; at x0.5 seed 3's baseline reached 89.10% and its scratch-E at 80%
                    88.70% (pilot). Trunk: the baseline, shared; masks enforced afterwards.
  sss               resnet20 (resnet-20 with block lambdas at 2 x --resnet-width: 8/16/32 channels):
                    --sss-gamma 0.075 and 0.09. At x0.25 the sparse trunks were erratic from seed to seed (gamma
                    0.05: 88.2% on seed 1, 80.7% on seed 2, which stalled in its first epochs and removed other
                    blocks); at x0.5 gamma 0.05 trained both seeds to 90.1% and 91.1% but left every lambda above
                    0, 0.15 removed 5 and 4 of the 9 blocks but ended at 87.8% and 84.0% (too far apart for a std
                    under 1.5 points); 0.075 removed 2, 2 and 4 (88.05%, 89.75%, 88.20%); 0.1 removed 5 and 4
                    on seeds 1 and 2 (87.65%, 88.55%), but on seed 3 a block lambda grew to 28.7 in epoch 4 (the
                    official update does not bound them: lr 0.1, momentum 0.9, only max(lambda, 0)) and the trunk
                    ended at 67%, so the second gamma is 0.09. Trunk:
                    SSS's sparsity training at that gamma (one per ratio); prune.py removes the blocks whose lambda
                    reached 0 (cifar/sparse-structure-selection/README.md).
  ekg               resnet20 (resnet_ekg-20 at 2 x --resnet-width: projection shortcuts, every width prunable):
                    keep 60% and 45% of the FLOPs (official counter; 0.45 is the official README's). At x0.25 the
                    baselines of seeds 1 and 2 ended at 88.60% and 86.95%, under the bar; at x0.5 seed 2's reached
                    91.35% (pilot). Trunk: the baseline, shared; the
                    search warms up on 32 and searches on 16 training images per class, the memory bank covers the
                    study's training images. Fine-tune: EKG's own (two views + KD from the bank, lr 0.01, 100/160 of
                    E epochs), and without the bank (finetune-ce, an extra column).
The table's "baseline" column is the accuracy of the trunk: the unpruned network for l1-norm, thinet,
regression-pruning and weight-level, the sparsity-trained one for network-slimming and sss, the soft-pruned full-size
network (SFP's own result) for sfp.

Layout: OUT/<method>/<model>/<ratio>/seed<k>/{baseline,pruned,finetune,scratch-E,scratch-B} (the trunk folder is
'sparse' for network-slimming and sss, 'sfp' for sfp), each with the stage's log.txt. A trunk shared by the ratios
lives under the first ratio; the others get a symlink to it, and their prune.json's "source" names the real folder,
which is how utils/results.py finds it. A plain trunk (train.py's own recipe: l1-norm, thinet, regression-pruning,
weight-level, ekg) of the same model, scale and seed as an earlier method's is that very run (tests/test_study.py
trains both and compares them bit for bit), so it is linked the same way: ThiNet's and regression pruning's VGG-16
use L1-norm's, regression pruning's ResNet-20 uses ThiNet's. OUT/study.json records the scale: a second invocation
with another scale into the same OUT is refused. Finished stages (summary.json, or prune.json for pruning) are
skipped and interrupted ones continue (--resume auto), so a killed study goes on where it stopped when the same
command runs again. --jobs stages run at once (default 2 on a 2-core CPU), each with --threads 1 torch thread: on
this CPU, shared, two one-thread stages did 2.6x the work of one two-thread stage. Steps start in order, rows
outermost (a method's model: every ratio and seed), each once its input is finished. A failed stage stops the
study (its log's last lines are shown; --keep-going runs what does not depend on it). At the end, also after a
failure: OUT/results/results.md (this scale, then the table, scratch against fine-tuned paired by seed, and the
convergence check), results.csv, one PNG per (model, method), and the total wall time. --export DEST runs nothing
and adds OUT's finished rows (one method's model, every ratio and seed) to DEST, the committed copy of the study
(its records without checkpoints, the invocations in DEST/study.json, DEST/results regenerated from every row
there), so a study longer than one sitting is committed row by row (cifar/README.md).

The study prints each stage's time as it finishes and the total at the end (also in the table's header).
"""
import argparse
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from models import model_entry  # noqa: E402
from models.layers import ResNetWidthOptions  # noqa: E402
from utils import stages  # noqa: E402
from utils.cli import Call, args_for, given  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.hparams import OneLineParser  # noqa: E402
from utils.methods import get_method  # noqa: E402
from utils.sweep import (Step, command, duration, execute, finished, from_root, shown,  # noqa: E402
                         write_table)  # the generic runner

DEFAULTS = {"epochs": 10, "train_subset": 24000, "test_subset": 2000, "width": 0.1875, "resnet_width": 0.25,
            "seeds": [1, 2, 3],
            "out": "study_runs/{dataset}"}
QUICK = {"epochs": 2, "train_subset": 256, "test_subset": 256, "width": 0.125, "resnet_width": 0.25, "seeds": [1],
         "out": "study_runs/{dataset}-quick"}
TRAIN_SIZES = {"fashionmnist": 60000, "cifar10": 50000, "cifar100": 50000}
SLIMMING_S_SCALE = 10  # see the docstring: the paper's s is too weak for a few thousand SGD steps
SFP_SCHEDULE = (0.3, 0.6, 0.8)  # SFP's LR milestones 60/120/160 of 200 epochs (after its epoch-1 warm-up)
EKG_KEEP = (0.6, 0.45)  # FLOPs kept (official counter); 0.45 is the official README's setting
# EKG's search images at this scale: 32 warm-up and 16 search images per class (the official 256 and 32 would make
# every search step cost more than a whole epoch of the study's training)
EKG_SEARCH = {"subset_per_class": 32, "val_per_class": 16, "search_batch_size": 160}
SSS_GAMMAS = (0.075, 0.09)  # SSS's --sss-gamma per ratio at ResNet-20 x0.5: 0.05 removes no block (docstring)
# slimming's PreResNet-20: a one-epoch linear warm-up from lr/8 to the recipe's 0.1 (see the docstring)
WARMUP = {"warmup_epochs": 1, "warmup_from": 0.0125}


# ------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Ratio:
    name: str                  # folder name
    prune: dict = field(default_factory=dict)   # the rule's options (prune.py's flags)
    trunk: dict = field(default_factory=dict)   # trunk options that depend on the ratio (SFP's rate)


@dataclass(frozen=True)
class Model:
    name: str                  # folder name
    family: str                # vgg / resnet (for --models)
    arch: str
    depth: int
    ratios: tuple
    width: str = "resnet_width"  # the scale key of its width factor: width (the VGGs') or resnet_width
    factor: float = 1.0          # x that width, for a row too narrow (or erratic) at the scale's own width
    warmup: dict = field(default_factory=dict)  # a warm-up of its lr-0.1 runs (trunk, scratch), for an erratic row


@dataclass(frozen=True)
class MethodPlan:
    name: str
    key: str                   # the method's folder (its registry key)
    trunk: str                 # the trunk's folder
    paper_epochs: int          # the trunk's epochs in the paper (fine-tuning is 40 of them)
    models: tuple
    lr: dict = field(default_factory=lambda: {"lr": 0.1})  # the trunk's and scratch runs' LR (the recipe's)
    trunk_options: object = None   # (model, cfg) -> the trunk's method options (slimming's -sr --s)
    schedule: object = None        # E -> the LR milestones of the trunk and scratch runs (SFP's, in epochs)
    arch_options: dict = field(default_factory=dict)  # architecture options of the trunk (SSS's block lambdas)
    prune_options: object = None   # cfg -> prune options that depend on the scale (EKG's bank over the training images)
    finetune: dict = field(default_factory=lambda: {"lr": 0.001})  # the fine-tune's LR (and schedule) in the study
    finetune_paper_epochs: int = 40    # the fine-tune's epochs in the paper (of paper_epochs for the trunk)
    extra_finetunes: tuple = ()        # (run name, fine-tune options): runs beside the paper's three (EKG without bank)
    plain_trunk: bool = False          # the trunk is train.py's plain recipe, the same run whichever method's script
    # trains it, so another method's trunk of the same model, scale and seed is linked too (the test trains each
    # such pair and compares them bit for bit); otherwise only the method's own ratios share a trunk


def _pct(p):
    return Ratio(f"p{p}", {"percent": p})


METHODS = {
    "l1-norm": MethodPlan("l1-norm", "cifar/l1-norm-pruning", "baseline", 160, (
        Model("vgg16", "vgg", "vgg", 16, (Ratio("A", {"variant": "A"}),), width="width"),
        Model("resnet56", "resnet", "resnet", 56, (Ratio("A", {"variant": "A"}), Ratio("B", {"variant": "B"})),
              factor=2)),
        plain_trunk=True),
    "network-slimming": MethodPlan("network-slimming", "cifar/network-slimming", "sparse", 160, (
        Model("vgg11", "vgg", "vgg_slim", 11, (_pct(0.5), _pct(0.6)), width="width"),
        Model("preresnet20", "resnet", "preresnet", 20, (_pct(0.4), _pct(0.6)), factor=4, warmup=WARMUP)),
        trunk_options=lambda model, cfg: {"sparsity_regularization": True, "s": slimming_s(model.arch, cfg)}),
    "sfp": MethodPlan("sfp", "cifar/soft-filter-pruning", "sfp", 200, (
        Model("resnet20", "resnet", "resnet_sfp", 20,
              tuple(Ratio(f"rate{r}", {}, {"rate": r}) for r in (0.7, 0.6)), factor=2),), lr={},
        schedule=lambda e: {"schedule": sfp_schedule(e)},
        trunk_options=lambda model, cfg: {"prune_layers": "inner"}),
    "thinet": MethodPlan("thinet", "cifar/thinet", "baseline", 160, (
        Model("vgg16", "vgg", "vgg", 16, (_pct(0.3), _pct(0.5)), width="width"),
        Model("resnet20", "resnet", "resnet", 20, (_pct(0.5),))), plain_trunk=True),
    "regression-pruning": MethodPlan("regression-pruning", "cifar/regression-pruning", "baseline", 160, (
        Model("vgg16", "vgg", "vgg", 16, (_pct(0.33), _pct(0.5)), width="width"),
        Model("resnet20", "resnet", "resnet", 20, (_pct(0.5),))), plain_trunk=True),
    "weight-level": MethodPlan("weight-level", "cifar/weight-level", "baseline", 160, (
        Model("vgg11_bn", "vgg", "vgg11_bn", 11, (_pct(0.3), _pct(0.8)), width="width"),
        Model("preresnet20", "resnet", "preresnet_wl", 20, (_pct(0.3), _pct(0.8)), factor=2)), plain_trunk=True),
    "sss": MethodPlan("sss", "cifar/sparse-structure-selection", "sparse", 160, (
        Model("resnet20", "resnet", "resnet", 20,
              tuple(Ratio(f"gamma{g:g}", {}, {"sss_gamma": g}) for g in SSS_GAMMAS), factor=2),),
        arch_options={"block_lambda": True}),
    "ekg": MethodPlan("ekg", "cifar/ekg", "baseline", 160, (
        Model("resnet20", "resnet", "resnet_ekg", 20, tuple(Ratio(f"k{k}", {"keep_flops": k}) for k in EKG_KEEP),
              factor=2),),
        prune_options=lambda cfg: {"bank_images": cfg["train_subset"], **EKG_SEARCH},
        finetune={"lr": 0.01, "schedule": []}, finetune_paper_epochs=100,
        extra_finetunes=(("finetune-ce", {"knowledge": "off"}),), plain_trunk=True),
}


def sfp_schedule(epochs):
    """SFP's milestones [1, 60, 120, 160] of 200 epochs, for E epochs: [1, 0.3 E, 0.6 E, 0.8 E] (at least 1)."""
    return [1] + [max(1, int(f * epochs)) for f in SFP_SCHEDULE]


def slimming_s(arch, cfg):
    """The paper's s for the model (network slimming's method records it) x --slimming-s-scale."""
    return float(f"{get_method('cifar/network-slimming').sparsity[arch] * cfg['slimming_s_scale']:.3g}")


def finetune_epochs(method, epochs):
    return max(1, round(epochs * method.finetune_paper_epochs / method.paper_epochs))


def trunk_key(call, plain):
    """What makes a trunk's run: its arguments and options but --save (the seed is one); the method too, unless
    the trunk is plain (any method's train.py trains the same run)."""
    d = json.loads(call.to_json())
    for part in d["args"] + [d["hparams"], d["options"]]:
        if part:
            part.pop("class")
            part["values"].pop("save", None)
    keys = ("stage", "args", "hparams", "options", "extra") + (() if plain else ("method",))
    return json.dumps({k: d[k] for k in keys}, sort_keys=True)


def selected(model, models):
    """Whether --models (a set of families and model folder names; empty: all) selects the model."""
    return not models or model.family in models or model.name in models


def plan(cfg, methods, models, seeds):
    """Every step of the study, in the order they run: row by row (a method's model, every ratio and seed), so
    that rows finish one after another and an interrupted study leaves whole rows to export."""
    out, e = from_root(cfg["out"]), cfg["epochs"]  # the stages run in the repo root
    data_dir = from_root(cfg["data"]) if cfg.get("data") else None
    device = {"device": cfg["device"]} if cfg.get("device") else {}
    steps, trained = [], {}  # trained: {trunk_key: folder} of the trunks planned so far
    for name in methods:
        m = METHODS[name]
        method = get_method(m.key)

        def data(stage):
            return args_for(stages.DataArgs, method, stage, dataset=cfg["dataset"], test_subset=cfg["test_subset"],
                            train_subset=cfg["train_subset"], **({"data": data_dir} if data_dir else {}))

        def train(stage, save, seed, **values):
            return args_for(stages.TrainArgs, method, stage, seed=seed, progress=False, save=save, **device,
                            **({} if cfg["tensorboard"] else {"tensorboard": False}), **values)

        eval_data = args_for(stages.EvalDataArgs, method, "prune", dataset=cfg["dataset"],
                             test_subset=cfg["test_subset"], **({"data": data_dir} if data_dir else {}))
        schedule = m.schedule(e) if m.schedule else {}
        for model in m.models:
            if not selected(model, models):
                continue
            recipe = {"epochs": e, **m.lr, **schedule, **model.warmup}  # the trunk's and the scratch runs'
            entry = model_entry(model.arch)
            arch_options = {"width": cfg[model.width] * model.factor, **m.arch_options}
            options = given(entry.options, **arch_options) if arch_options else None
            for seed in seeds:
                for ratio in model.ratios:
                    run = os.path.join(out, m.name, model.name, ratio.name, f"seed{seed}")
                    tag = f"{m.name}/{model.name}/{ratio.name}/seed{seed}"
                    trunk = os.path.join(run, m.trunk)
                    link = None
                    own = {**(m.trunk_options(model, cfg) if m.trunk_options else {}), **ratio.trunk}
                    trunk_args = train("train", trunk, seed, **recipe)
                    call = Call("train", m.key, (given(stages.ModelArgs, arch=model.arch, depth=model.depth),
                                                 data("train"), trunk_args),
                                given(method.TrainHparams, **own), options)
                    key = trunk_key(call, m.plain_trunk)
                    if key in trained:  # an earlier ratio's, or another method's script's, very run
                        link, trunk = (trunk, trained[key])
                    else:
                        steps.append(Step(f"{tag} {m.trunk}", "train", trunk, call))
                        trained[key] = trunk
                    pruned = os.path.join(run, "pruned")
                    ckpt = os.path.join(pruned, "pruned.pth.tar")
                    prune_args = given(stages.PruneArgs, model=os.path.join(trunk, "checkpoint.pth.tar"), save=pruned,
                                       **device)
                    prune_hp = {**(m.prune_options(cfg) if m.prune_options else {}), **ratio.prune}
                    steps.append(Step(f"{tag} pruned", "prune", pruned,
                                      Call("prune", m.key, (prune_args, eval_data), given(method.Hparams, **prune_hp)),
                                      needs=[("train", trunk)], link=link and (link, trunk)))
                    for name, ft_hp in (("finetune", {}),) + m.extra_finetunes:
                        ft = train("finetune", os.path.join(run, name), seed, epochs=finetune_epochs(m, e),
                                   **m.finetune)
                        steps.append(Step(f"{tag} {name}", "train", os.path.join(run, name),
                                          Call("finetune", m.key, (given(stages.FinetuneArgs, refine=ckpt),
                                                                   data("finetune"), ft),
                                               given(method.FinetuneHparams, **ft_hp)),
                                          needs=[("prune", pruned)]))
                    for budget in ("E", "B"):  # B: the scratch stage turns E into int(E x FLOPs ratio)
                        save = os.path.join(run, f"scratch-{budget}")
                        steps.append(Step(f"{tag} scratch-{budget}", "train", save,
                                          Call("scratch", m.key,
                                               (given(stages.ScratchArgs, scratch=ckpt, budget=budget), data("scratch"),
                                                train("scratch", save, seed, **recipe)),
                                               method.ScratchHparams()),
                                          needs=[("prune", pruned)]))
    return steps


def check_scale(cfg, dry_run):
    """OUT/study.json keeps the scale of the runs in OUT: skipping them at another scale would mix scales."""
    path = os.path.join(cfg["out"], "study.json")
    scale = {k: cfg[k] for k in ("dataset", "epochs", "train_subset", "test_subset", "width", "resnet_width",
                                 "slimming_s_scale")}
    if os.path.exists(cfg["out"]) and not os.path.isdir(cfg["out"]):
        raise UserError(f"--out {cfg['out']}: exists and is not a folder")
    if os.path.isfile(path):
        try:
            with open(path) as f:
                old = json.load(f)["scale"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{path}: unreadable; it records the scale of the runs in --out") from None
        diff = [f"--{k.replace('_', '-')} {old.get(k)} there, {v} here" for k, v in scale.items() if old.get(k) != v]
        if diff:
            raise UserError(f"--out {cfg['out']} holds a study at another scale ({'; '.join(diff)}): choose "
                            f"another --out, or the same flags")
    elif not dry_run:
        from utils.checkpoint import check_writable, save_json
        check_writable(cfg["out"], "--out")
        save_json({"scale": scale, "created": time.strftime("%Y-%m-%d %H:%M:%S")}, path)


def record_invocation(cfg, start, ran, new=False):
    """This invocation (start, wall time so far, steps run) in OUT/study.json: appended when ``new``, else brought
    up to date, which the study does after every step, so a killed invocation still counts up to its last finished
    step. Returns all invocations so far."""
    from utils.checkpoint import save_json
    path = os.path.join(cfg["out"], "study.json")
    with open(path) as f:
        record = json.load(f)
    runs = record.setdefault("invocations", [])
    this = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)),
            "wall_s": round(time.time() - start, 1), "steps_run": ran}
    if new or not runs:
        runs.append(this)
    else:
        runs[-1] = this
    save_json(record, path)
    return runs


def _interrupted(_signum, _frame):
    raise KeyboardInterrupt  # a plain kill stops the stages and keeps the record, as Ctrl-C does


def wall_note(invocations, this=True):
    """The study's wall time: over the invocations that ran something (a rerun that only collects adds 0 s);
    ``this``: and the last invocation's."""
    working = [i for i in invocations if i.get("steps_run")]
    total = sum(i["wall_s"] for i in working)
    note = (f"wall time {duration(total)} over {len(working)} invocation(s) that ran steps" if working
            else "no invocation ran a step yet")
    if not this:
        return note
    last = invocations[-1] if invocations else {"wall_s": 0, "steps_run": 0}
    return note + (f" (this one: {duration(last['wall_s'])}, {last['steps_run']} step(s))" if last["steps_run"]
                   else " (this one only collected the table)")


def warmup_note(rows):
    """The rows (method -> model names) whose lr-0.1 runs warm up (Model.warmup), in words."""
    warm = [(f"{m.name} {model.name}", model.warmup) for name, m in METHODS.items()
            for model in m.models if model.warmup and model.name in rows.get(name, ())]
    return " ".join(f"{row}: its trunk and scratch runs warm up linearly from lr {w['warmup_from']:g} over their "
                   f"first {w['warmup_epochs']:g} epoch(s) (at the recipe's lr from the first step one seed's trunk "
                   f"diverged)." for row, w in warm)


def rows_in(runs):
    """The rows with a folder in a run tree, method -> model names, in METHODS' order: what a table of it can show."""
    return {name: [m.name for m in plan.models if os.path.isdir(os.path.join(runs, name, m.name))]
            for name, plan in METHODS.items() if os.path.isdir(os.path.join(runs, name))}


def header(cfg, seeds, wall, trained, argv, rows, which="in this invocation"):
    """results.md's opening: scale and settings, each method's and row's own only where the table has the row (rows:
    method -> model names)."""
    images = cfg["train_subset"] or TRAIN_SIZES[cfg["dataset"]]
    e = cfg["epochs"]
    wider = sorted({f"x{m.factor * cfg[m.width]:g}" for n in rows for m in METHODS[n].models
                    if m.factor != 1 and m.name in rows[n]})
    finetunes = ([f"SFP {finetune_epochs(METHODS['sfp'], e)}, 40/200"] if "sfp" in rows else []) + (
        [f"EKG {finetune_epochs(METHODS['ekg'], e)} at lr 0.01 with its memory bank, 100/160"] if "ekg" in rows else [])
    # a method's settings only where it has rows here: the others' would describe nothing in the table
    trunks = {"the unpruned network": [n for n in rows if METHODS[n].plain_trunk],
              "the sparsity-trained one": [n for n in rows if METHODS[n].trunk == "sparse"],
              "the soft-pruned full-size network, SFP's own result": [n for n in rows if n == "sfp"]}
    settings = []
    if "network-slimming" in rows:
        settings.append(f"Network slimming's s: the paper's 1e-4 (VGG) / 1e-5 (PreResNet) x "
                        f"{cfg['slimming_s_scale']:g} (= {slimming_s('vgg_slim', cfg):g} / "
                        f"{slimming_s('preresnet', cfg):g}; the paper's s barely moves the BN scales in a few thousand "
                        f"SGD steps).")
    if "sfp" in rows:
        settings.append(f"SFP: LR milestones {sfp_schedule(e)} (its 1/60/120/160 of 200), soft pruning of each block's "
                        f"first conv only (the reference: every conv, which collapses at these widths).")
    scale = (f"Scale: the first {images:,} training images, {cfg['test_subset'] or 'all'} test images, VGG width "
             f"x{cfg['width']:g}, ResNet width x{cfg['resnet_width']:g}"
             + (f" ({' and '.join(wider)} where the model column says so)" if wider else "")
             + f", trunk E = {e} epoch(s) (the paper's 160" + ("; SFP's 200" if "sfp" in rows else "") + "), fine-tune "
             f"{finetune_epochs(METHODS['l1-norm'], e)} epoch(s) at lr 0.001 (40/160 of E"
             + "".join(f"; {f}" for f in finetunes) + f"), scratch-E {e} epoch(s), scratch-B int({e} x FLOPs ratio) "
             f"epochs (computed by scratch.py); seeds {' '.join(map(str, seeds))} {which}.")
    return "\n".join([
        f"# Rethinking the value of network pruning: CPU-scale study on {cfg['dataset']}", "",
        " ".join(t for t in [scale, *settings, warmup_note(rows), "A CPU-scale study, not the paper's "
                                                                                    "setting."] if t), "",
        "The baseline column is the trunk that prune.py read: "
        + "; ".join(f"{what} ({', '.join(names)})" for what, names in trunks.items() if names) + ". "
        "Model names are arch-depth and width factor" + ("; SFP's fine-tune and scratch runs train prune.py's "
                                                         "smaller network." if "sfp" in rows else "."), "",
        f"Command: `python cifar/study.py {shlex.join(argv)}`; {wall}; training time recorded by all finished "
        f"runs {duration(trained)} (without start-up, data loading and pruning).", ""])


def trained_time(out):
    """The epochs' time of every finished run: train_time_s spans a run's resumed processes (wall_time_s only its
    last one)."""
    total = 0.0
    for folder, _dirs, files in os.walk(out):
        if "summary.json" in files:
            try:
                with open(os.path.join(folder, "summary.json")) as f:
                    record = json.load(f)
                total += float(record.get("train_time_s") or record.get("wall_time_s") or 0)
            except (OSError, ValueError):
                pass
    return total


CONVERGED = {"bar": 0.88, "tolerance": 0.005, "max_std": 0.015}  # the conditions the table is checked against


def convergence_note(rows, cfg, seeds):
    """Whether the table can carry a conclusion: utils.results.check_convergence over every row."""
    from utils.results import check_convergence
    bar = CONVERGED["bar"] if cfg["dataset"] == "fashionmnist" else 0.0  # the 88% bar is Fashion-MNIST's
    problems = check_convergence(rows, runs=len(seeds), **{**CONVERGED, "bar": bar})
    rule = (f"every trunk not still improving within the last quarter of its epochs (the best of its second half "
            f"at most {100 * CONVERGED['tolerance']:g} points above the best of its first half), every plainly "
            f"trained one's best at least {100 * bar:g}% (the sparsity-trained and soft-pruned trunks: flatness "
            f"only), every column {len(seeds)} run(s) with a sample std under {100 * CONVERGED['max_std']:g} points")
    if not problems:
        return f"Convergence check ({rule}): holds for every row.\n"
    return (f"Convergence check ({rule}): {len(problems)} problem(s):\n\n"
            + "".join(f"- {p}\n" for p in problems))


def collect(cfg, seeds, wall, argv, plot, metric):
    return write_table(cfg["out"], header(cfg, seeds, wall, trained_time(cfg["out"]), argv, rows_in(cfg["out"])),
                       metric, plot,
                       footer=lambda rows: convergence_note(rows, cfg, seeds))


# ------------------------------------------------------------------------------------------- export
def export(cfg, methods, models, seeds, dest, argv, plot, metric):
    """Add --out's finished rows to DEST, the committed copy of a study (new or empty, or an earlier export at the
    same scale): the records (summary.json, prune.json, log.txt; no checkpoint) and shared-trunk links of every
    (method, model) whose steps have all finished for ``seeds``, the invocations of OUT/study.json (so the wall
    time counts every part), and DEST/results regenerated from all of DEST's rows. A row already in DEST is left
    as it is when its records are the same, and refused when they differ; an unfinished row is left out. A study
    too long for one machine session can so be run in parts, each part's rows committed as they finish.
    Returns (rows added, rows already there, rows left out unfinished)."""
    from utils.checkpoint import save_json
    from utils.sweep import copy_records, records_of
    out = os.path.join(ROOT, from_root(cfg["out"]))  # the plan's paths are relative to the repo root
    check_scale(cfg, dry_run=True)  # the flags must name OUT's scale: the header describes the rows with them
    try:
        with open(os.path.join(out, "study.json")) as f:
            record = json.load(f)
        record["scale"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--out {cfg['out']}: no readable study.json, not a study folder") from None
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise UserError(f"--export {dest}: exists and is not a folder")
    published = {"scale": record["scale"], "created": record.get("created"), "invocations": []}
    if os.path.isfile(os.path.join(dest, "study.json")):
        try:
            with open(os.path.join(dest, "study.json")) as f:
                published = json.load(f)
            same = published["scale"] == record["scale"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"--export {dest}: its study.json is unreadable") from None
        if not same:
            raise UserError(f"--export {dest}: holds a study at another scale; export into a new folder")
    elif os.path.isdir(dest) and os.listdir(dest):
        raise UserError(f"--export {dest}: has files but no study.json, not a study's export; remove it first (its "
                        f"records would mix with these)")
    runs = os.path.join(dest, "runs")
    added, there, unfinished = {}, [], []
    for name in methods:
        for model in METHODS[name].models:
            if not selected(model, models):
                continue
            row = os.path.join(name, model.name)
            done = [finished(s.kind, os.path.join(ROOT, s.save)) for s in plan(cfg, [name], {model.name}, seeds)]
            if not all(done):
                if any(done):
                    unfinished.append(row)
                continue
            mine = records_of(os.path.join(out, row))
            if os.path.lexists(os.path.join(runs, row)):
                if records_of(os.path.join(runs, row)) != mine:
                    raise UserError(f"--export {dest}: {row} is there with other records (another run of that row); "
                                    f"remove it there first, or leave the row out (--methods, --models)")
                there.append(row)
            else:
                added[row] = mine
    for row, mine in added.items():  # a link to another method's trunk (a plain trunk) must resolve in DEST too
        for rel, value in mine.items():
            if isinstance(value, tuple):
                target = os.path.relpath(os.path.normpath(os.path.join(out, row, os.path.dirname(rel), value[1])), out)
                owner = os.path.join(*target.split(os.sep)[:2])
                if owner not in added and not os.path.lexists(os.path.join(runs, owner)):
                    raise UserError(f"--export {dest}: {row} uses the trunk {target}, whose row {owner} is neither "
                                    f"finished in --out nor in {dest}")
    os.makedirs(dest, exist_ok=True)
    for row, mine in added.items():
        copy_records(mine, os.path.join(runs, row))
    known = {i["started"]: n for n, i in enumerate(published["invocations"])}
    for invocation in record.get("invocations", []):  # the same invocation exported again: its later state
        if invocation["started"] in known:
            published["invocations"][known[invocation["started"]]] = invocation
        else:
            published["invocations"].append(invocation)
    published["invocations"].sort(key=lambda i: i["started"])
    save_json(published, os.path.join(dest, "study.json"))
    if os.path.isdir(runs):
        shown_argv = [a for n, a in enumerate(argv) if a != "--export" and not a.startswith("--export=")
                      and (n == 0 or argv[n - 1] != "--export")]
        write_table(runs, header(cfg, seeds, wall_note(published["invocations"], this=False), trained_time(runs),
                                 shown_argv, rows_in(runs), which="for every row"),
                    metric, plot, footer=lambda rows: convergence_note(rows, cfg, seeds),
                    results=os.path.join(dest, "results"))
    return sorted(added), there, unfinished


# ------------------------------------------------------------------------------------------- CLI
def parse_args(argv):
    p = OneLineParser(prog="study.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="study folder (default: study_runs/DATASET; --quick: study_runs/DATASET-quick)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), metavar="METHOD",
                   help=f"methods to run: {', '.join(METHODS)} (default: all)")
    p.add_argument("--models", nargs="+", metavar="MODEL",
                   help="only these models: vgg, resnet, or a model folder name (vgg16, resnet56, vgg11, "
                        "preresnet20, resnet20, vgg11_bn) (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="K", help="seeds (default: 1 2 3; --quick: 1)")
    p.add_argument("--epochs", type=int, help=f"E, the trunk's epochs (default: {DEFAULTS['epochs']}; --quick: "
                                               f"{QUICK['epochs']})")
    p.add_argument("--train-subset", type=int, help=f"training images, the first N (0 = all; default: "
                                                     f"{DEFAULTS['train_subset']}; --quick: {QUICK['train_subset']})")
    p.add_argument("--test-subset", type=int, help=f"test images, the first N (0 = all; default: "
                                                    f"{DEFAULTS['test_subset']}; --quick: {QUICK['test_subset']})")
    p.add_argument("--width", type=float, help="VGG width factor (default: 0.1875; --quick: 0.125)")
    p.add_argument("--resnet-width", type=float,
                   help="ResNet width factor: stem and stages 16/32/64 x this, a multiple of 1/16 (default: 0.25; "
                        "--quick: 0.25)")
    p.add_argument("--slimming-s-scale", type=float, default=SLIMMING_S_SCALE,
                   help="network slimming's sparsity rate s = the paper's (1e-4 VGG, 1e-5 PreResNet) x this "
                        "(default: %(default)s; 1 = the paper's s)")
    p.add_argument("--quick", action="store_true", help="smoke scale (minutes): the defaults marked --quick")
    p.add_argument("--dataset", default="fashionmnist", choices=sorted(TRAIN_SIZES),
                   help="dataset (default: %(default)s)")
    p.add_argument("--data", help="dataset folder (default: the scripts' lookup, ./data then "
                                  "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--device", help="--device of every stage (default: the scripts' auto)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="tensorboard logs per stage (default: on; --quick: off)")
    p.add_argument("--metric", choices=["best", "final"], default="best",
                   help="table accuracy: best over epochs (the paper's) or the last epoch's (default: best)")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True,
                   help="PNG plots (needs matplotlib; default: on)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="stages run at the same time (default: %(default)s, one per core up to 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of each stage (OMP_NUM_THREADS; 0 = torch's default; default: %(default)s: "
                        "on a small CPU, parallel one-thread stages beat multi-threaded ones)")
    p.add_argument("--keep-going", action="store_true",
                   help="after a failed step, go on with the steps that do not depend on it (default: stop)")
    p.add_argument("--verbose", action="store_true", help="show every stage's output (always in SAVE/log.txt)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run and write nothing")
    p.add_argument("--export", metavar="DEST",
                   help="run nothing: add --out's finished rows (every seed of a method's model done) to DEST, e.g. "
                        "cifar/study_results/fashionmnist, to commit them: their run records (summary.json, "
                        "prune.json, log.txt; no checkpoints), OUT's invocations in DEST/study.json, and "
                        "DEST/results regenerated from every row in DEST. DEST: new, empty, or an earlier export at "
                        "the same scale (a study run in parts); a row there with other records is refused")
    args = p.parse_args(argv)

    base = QUICK if args.quick else DEFAULTS
    cfg = {k: (getattr(args, k) if getattr(args, k) is not None else base[k])
           for k in ("epochs", "train_subset", "test_subset", "width", "resnet_width", "out")}
    cfg["out"] = args.out or base["out"].format(dataset=args.dataset)
    cfg.update(dataset=args.dataset, slimming_s_scale=args.slimming_s_scale, data=args.data, device=args.device,
               tensorboard=(not args.quick) if args.tensorboard is None else args.tensorboard)
    seeds = args.seeds if args.seeds is not None else base["seeds"]
    if cfg["epochs"] < 1:
        raise UserError(f"--epochs {cfg['epochs']}: must be at least 1")
    if not 0 <= cfg["train_subset"] <= TRAIN_SIZES[args.dataset]:
        raise UserError(f"--train-subset {cfg['train_subset']}: must lie in 0..{TRAIN_SIZES[args.dataset]} "
                        f"(0 = all)")
    if not 0 <= cfg["test_subset"] <= 10000:
        raise UserError(f"--test-subset {cfg['test_subset']}: must lie in 0..10000 (0 = all)")
    if not cfg["width"] > 0:
        raise UserError(f"--width {cfg['width']}: must be positive")
    try:  # the models' own check of a ResNet width
        ResNetWidthOptions(width=cfg["resnet_width"])
    except UserError as e:
        raise UserError(str(e).replace("--width", "--resnet-width", 1)) from None
    if not cfg["slimming_s_scale"] >= 0:
        raise UserError(f"--slimming-s-scale {cfg['slimming_s_scale']}: must not be negative")
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {' '.join(map(str, seeds))}: distinct non-negative whole numbers")
    if args.jobs < 1 or args.threads < 0:
        raise UserError(f"--jobs {args.jobs} / --threads {args.threads}: jobs at least 1, threads not negative")
    if args.data and not os.path.isdir(args.data):
        raise UserError(f"--data {args.data}: no such folder")
    known = {"vgg", "resnet"} | {m.name for p_ in METHODS.values() for m in p_.models}
    for name in args.models or ():
        if name not in known:
            raise UserError(f"--models {name}: not a model of the study (choose from {', '.join(sorted(known))})")
    methods = [m for m in METHODS if m in args.methods]  # the study's order
    models = set(args.models or ())
    if models and not any(selected(mo, models) for m in methods for mo in METHODS[m].models):
        raise UserError(f"--models {' '.join(args.models)}: none of them is a model of --methods {' '.join(methods)}")
    return args, cfg, methods, models, seeds


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, cfg, methods, models, seeds = parse_args(argv)
    if args.export:
        added, there, unfinished = export(cfg, methods, models, seeds, args.export, argv, args.plot, args.metric)
        print(f"study: {len(added)} row(s) added to {args.export} ({', '.join(added) or 'none'}); "
              f"{len(there)} already there; {len(unfinished)} unfinished, left out ({', '.join(unfinished) or 'none'})")
        return 0
    if args.plot and not args.dry_run:
        import importlib.util
        if importlib.util.find_spec("matplotlib") is None:
            raise UserError("--plot needs matplotlib (pip install matplotlib), or pass --no-plot") from None
    check_scale(cfg, args.dry_run)
    steps = plan(cfg, methods, models, seeds)
    if args.dry_run:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--dry-run | head` ends quietly
        for step in steps:
            state = " (done: skipped)" if finished(step.kind, step.save) else ""
            print(f"# {step.label}{state}")
            if step.link:
                print(f"# {shown(step.link[:1])} -> {shown(step.link[1:])} (shared trunk)")
            print("python " + shown(command(step)[1:]))
        print(f"# then: python -m utils.results {cfg['out']} --out {os.path.join(cfg['out'], 'results')}")
        return 0

    start = time.time()
    record_invocation(cfg, start, 0, new=True)
    done = [0]

    def step_ended(ran):
        done[0] = ran
        record_invocation(cfg, start, ran)

    signal.signal(signal.SIGTERM, _interrupted)
    try:
        ran, skipped, failed, blocked = execute(steps, args.jobs, args.threads, args.verbose, args.keep_going,
                                                on_step=step_ended)
    except KeyboardInterrupt:
        record_invocation(cfg, start, done[0])
        print(f"\nstudy.py: interrupted after {(time.time() - start) / 60:.1f} min; run the same command again to "
              f"continue", file=sys.stderr)
        sys.exit(130)
    wall = time.time() - start
    collect(cfg, seeds, wall_note(record_invocation(cfg, start, ran)), argv, args.plot, args.metric)
    print(f"study: {ran} step(s) run, {skipped} skipped (done), {len(failed)} failed, {len(blocked)} blocked; "
          f"total wall time {duration(wall)} ({wall:.0f} s)")
    if failed or blocked:
        raise UserError(f"{len(failed)} step(s) failed ({'; '.join(failed)}), {len(steps) - ran - skipped} not "
                        f"run; see the failed steps' log.txt, fix, and run the same command again")
    return 0


if __name__ == "__main__":
    run_main(main)
