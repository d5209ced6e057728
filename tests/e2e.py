"""The real-data end-to-end experiments (Fashion-MNIST) that tests/test_e2e_*.py check at seed 1 and
tests/measure_margins.py runs over several seeds to set their accuracy bars. Each runs a method's stages with the
command lines of its scripts (in this process, through utils/cli.py: no interpreter start-up per stage; the demo
runs as the subprocess `make demo` runs) and returns {stage: summary.json, "prune": prune.json}."""
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FASHION_MNIST, run, stage  # noqa: E402

QUIET = ["--no-progress", "--no-tensorboard"]
NOLOG = (lambda *a, **k: None)  # noqa: E731


def data_flags(test_subset):
    return ["--dataset", "fashionmnist", "--data", FASHION_MNIST, "--test-subset", test_subset]


def load(folder, name="summary.json"):
    return json.loads((Path(folder) / name).read_text())


def results(root, stages):
    out = {name: load(root / name) for name in stages}
    out["prune"] = load(root / "pruned", "prune.json")
    return out


# ------------------------------------------------------------------------------------------------- L1-norm
DEMO = {"epochs": 3, "train_subset": 3000, "test_subset": 2000}


def demo(root, seed=1):
    """make demo's script at a smaller scale: VGG-16 at width 0.25, L1-norm (VGG-16-A), five stages."""
    out = Path(root) / "demo"
    proc = run([ROOT / "cifar" / "l1-norm-pruning" / "demo.py", "--epochs", DEMO["epochs"], "--train-subset",
                DEMO["train_subset"], "--test-subset", DEMO["test_subset"], "--seed", seed, "--data", FASHION_MNIST,
                "--out", out], env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, timeout=1800)
    res = results(out, ("baseline", "finetune", "scratch-E", "scratch-B"))
    res["stdout"] = proc.stdout
    res["root"] = out
    return res


# --------------------------------------------------------------------------------------------------- ThiNet
THINET = {"percent": 0.5, "calib_images": 500, "epochs": 3}


def thinet(root, seed, baseline_checkpoint, train_subset=DEMO["train_subset"], test_subset=DEMO["test_subset"]):
    """ThiNet on a trained VGG-16 (width 0.25; the demo's baseline): prune conv1_1..conv4_3 by half, fine-tune,
    scratch-E, scratch-B through cifar/thinet's scripts."""
    key, root = "cifar/thinet", Path(root)
    data = data_flags(test_subset)
    train = data + ["--train-subset", train_subset, "--seed", seed] + QUIET
    pruned = root / "pruned" / "pruned.pth.tar"
    stage(key, "prune", data + ["--model", baseline_checkpoint, "--percent", THINET["percent"], "--calib-images",
                                THINET["calib_images"], "--seed", seed, "--save", root / "pruned"], log=NOLOG)
    stage(key, "finetune", train + ["--refine", pruned, "--epochs", 1, "--save", root / "finetune"], log=NOLOG)
    for budget in ("E", "B"):
        stage(key, "scratch", train + ["--scratch", pruned, "--budget", budget, "--epochs", THINET["epochs"],
                                       "--save", root / f"scratch-{budget}"], log=NOLOG)
    return results(root, ("finetune", "scratch-E", "scratch-B"))


# --------------------------------------------------------------------------------------------- slimming
SLIMMING = {"epochs": 3, "s": 0.01, "percent": 0.4, "train_subset": 3000, "test_subset": 1000}


def slimming(root, seed=1):
    """Sparsity training (s = 0.01: large enough to move the gammas within ~140 steps, where the paper's 1e-4 acts
    over 125k) of VGG-11 (slimming variant, width 1/8), prune 40% of the BN channels, fine-tune, scratch-E/B."""
    key, root, c = "cifar/network-slimming", Path(root), SLIMMING
    data = data_flags(c["test_subset"])
    train = data + ["--train-subset", c["train_subset"], "--seed", seed] + QUIET
    pruned = root / "pruned" / "pruned.pth.tar"
    stage(key, "train", train + ["-sr", "--s", c["s"], "--arch", "vgg", "--depth", 11, "--width", 0.125, "--epochs",
                                 c["epochs"], "--save", root / "sparse"], log=NOLOG)
    stage(key, "prune", data + ["--percent", c["percent"], "--model", root / "sparse" / "checkpoint.pth.tar",
                                "--save", root / "pruned"], log=NOLOG)
    stage(key, "finetune", train + ["--refine", pruned, "--epochs", 1, "--save", root / "finetune"], log=NOLOG)
    for budget in ("E", "B"):
        stage(key, "scratch", train + ["--scratch", pruned, "--budget", budget, "--epochs", c["epochs"],
                                       "--save", root / f"scratch-{budget}"], log=NOLOG)
    return results(root, ("sparse", "finetune", "scratch-E", "scratch-B"))


# ----------------------------------------------------------------------------------------- weight level
WEIGHT_LEVEL = {"epochs": 3, "percent": 0.5, "train_subset": 2400, "test_subset": 500}


def weight_level(root, seed=3):
    """VGG-11-BN at width 1/8: baseline, prune 50% of the conv weights, fine-tune, scratch-E/B (masks kept)."""
    key, root, c = "cifar/weight-level", Path(root), WEIGHT_LEVEL
    data = data_flags(c["test_subset"])
    train = data + ["--train-subset", c["train_subset"], "--seed", seed] + QUIET
    pruned = root / "pruned" / "pruned.pth.tar"
    stage(key, "train", train + ["--arch", "vgg11_bn", "--depth", 11, "--width", 0.125, "--epochs", c["epochs"],
                                 "--schedule", 0.67, "--save", root / "baseline"], log=NOLOG)
    stage(key, "prune", data + ["--percent", c["percent"], "--model", root / "baseline" / "checkpoint.pth.tar",
                                "--save", root / "pruned"], log=NOLOG)
    stage(key, "finetune", train + ["--refine", pruned, "--epochs", 1, "--save", root / "finetune"], log=NOLOG)
    for budget in ("E", "B"):
        stage(key, "scratch", train + ["--scratch", pruned, "--budget", budget, "--epochs", c["epochs"],
                                       "--schedule", 0.67, "--save", root / f"scratch-{budget}"], log=NOLOG)
    return results(root, ("baseline", "finetune", "scratch-E", "scratch-B"))


# ------------------------------------------------------------------------------------------------- SFP
SFP = {"epochs": 3, "rate": 0.7, "train_subset": 1280, "test_subset": 1000, "batch_size": 32}
SFP_SCHEDULE = ["--lr", "0.01", "--schedule", "1", "--gammas", "2"]  # SFP's warm-up shape at CPU scale


def sfp(root, seed=1):
    """SFP training of ResNet-20 at rate 0.7 (conv_a only), prune to the smaller network, fine-tune it, scratch-E
    the reference's way (full network, the SFP zeros as a fixed mask) and scratch-B of the smaller network."""
    key, root, c = "cifar/soft-filter-pruning", Path(root), SFP
    data = data_flags(c["test_subset"])
    train = data + ["--train-subset", c["train_subset"], "--batch-size", c["batch_size"], "--seed", seed,
                    "--device", "cpu"] + QUIET
    pruned, sfp_ckpt = root / "pruned" / "pruned.pth.tar", root / "sfp" / "checkpoint.pth.tar"
    stage(key, "train", train + SFP_SCHEDULE + ["--arch", "resnet20", "--rate", c["rate"], "--prune-layers",
                                                "inner", "--epochs", c["epochs"], "--save", root / "sfp"], log=NOLOG)
    stage(key, "prune", data + ["--model", sfp_ckpt, "--save", root / "pruned"], log=NOLOG)
    stage(key, "finetune", train + ["--refine", pruned, "--epochs", 1, "--lr", "0.01", "--save", root / "finetune"],
          log=NOLOG)
    stage(key, "scratch", train + SFP_SCHEDULE + ["--masked", "--scratch", sfp_ckpt, "--budget", "E", "--epochs",
                                                  c["epochs"], "--save", root / "scratch-E"], log=NOLOG)
    stage(key, "scratch", train + SFP_SCHEDULE + ["--scratch", pruned, "--budget", "B", "--epochs", c["epochs"],
                                                  "--save", root / "scratch-B"], log=NOLOG)
    return results(root, ("sfp", "finetune", "scratch-E", "scratch-B"))


# ------------------------------------------------------------------------------------------------ lottery
LOTTERY = {"epochs": 3, "rounds": 2, "percent": 0.2, "train_subset": 3000, "test_subset": 1000}


def lottery(root, seed=1):
    """Two rounds of the iterative weight-level sweep (dense, then 20% of what remains per round), each round's
    winning ticket and its random-init control; in this process through iterate.py's sweep()."""
    from utils.methods import import_path
    iterate = import_path(str(ROOT / "lottery_ticket" / "iterate.py"), "lottery_iterate_e2e")
    c, save = LOTTERY, Path(root) / "sweep"
    rows = iterate.sweep([str(a) for a in [
        "--arch", "vgg11_bn", "--depth", 11, "--width", 0.125, "--dataset", "fashionmnist", "--data", FASHION_MNIST,
        "--train-subset", c["train_subset"], "--test-subset", c["test_subset"], "--rounds", c["rounds"], "--percent",
        c["percent"], "--epochs", c["epochs"], "--seed", seed, "--save", save, "--", "--schedule", "0.67",
        *QUIET]], log=NOLOG)
    return {"rows": rows, "root": save}




# ------------------------------------------------------------------------------------- regression pruning
REGRESSION = {"epochs": 3, "percent": 0.5, "calib_images": 500, "width": 0.125, "train_subset": 3000,
              "test_subset": 1000}


def regression(root, seed=1):
    """He et al.'s channel pruning on VGG-16 at width 1/8: baseline, LASSO + least squares on conv1_1..conv4_3
    (half of each layer's channels), fine-tune, scratch-E, scratch-B, through cifar/regression-pruning's scripts."""
    key, root, c = "cifar/regression-pruning", Path(root), REGRESSION
    data = data_flags(c["test_subset"])
    train = data + ["--train-subset", c["train_subset"], "--seed", seed] + QUIET
    pruned = root / "pruned" / "pruned.pth.tar"
    stage(key, "train", train + ["--arch", "vgg", "--depth", 16, "--width", c["width"], "--epochs", c["epochs"],
                                 "--save", root / "baseline"], log=NOLOG)
    stage(key, "prune", data + ["--model", root / "baseline" / "checkpoint.pth.tar", "--percent", c["percent"],
                                "--calib-images", c["calib_images"], "--seed", seed, "--save", root / "pruned"],
          log=NOLOG)
    stage(key, "finetune", train + ["--refine", pruned, "--epochs", 1, "--save", root / "finetune"], log=NOLOG)
    for budget in ("E", "B"):
        stage(key, "scratch", train + ["--scratch", pruned, "--budget", budget, "--epochs", c["epochs"],
                                       "--save", root / f"scratch-{budget}"], log=NOLOG)
    return results(root, ("baseline", "finetune", "scratch-E", "scratch-B"))


# ------------------------------------------------------------------------------- sparse structure selection
SSS = {"epochs": 3, "gamma": 0.1, "train_subset": 1000, "test_subset": 500}


def sss(root, seed=1):
    """Sparse Structure Selection of ResNet-20 (block lambdas, APG-NAG at gamma 0.1, which zeroes a few blocks within
    ~50 steps), remove the blocks whose lambda is 0, fine-tune, scratch-E/B. A constant LR: at this scale lambdas
    that reach 0 at lr 0.1 come back after an LR drop (the threshold lr x gamma drops with it, the data's pull on
    lambda does not), so the selection would depend on the seed (0 to 4 blocks in three seeds)."""
    key, root, c = "cifar/sparse-structure-selection", Path(root), SSS
    data = data_flags(c["test_subset"])
    train = data + ["--train-subset", c["train_subset"], "--seed", seed, "--schedule"] + QUIET
    pruned = root / "pruned" / "pruned.pth.tar"
    stage(key, "train", train + ["--arch", "resnet", "--depth", 20, "--sss-gamma", c["gamma"], "--epochs",
                                 c["epochs"], "--save", root / "sparse"], log=NOLOG)
    stage(key, "prune", data + ["--model", root / "sparse" / "checkpoint.pth.tar", "--save", root / "pruned"],
          log=NOLOG)
    stage(key, "finetune", train + ["--refine", pruned, "--epochs", 1, "--save", root / "finetune"], log=NOLOG)
    for budget in ("E", "B"):
        stage(key, "scratch", train + ["--scratch", pruned, "--budget", budget, "--epochs", c["epochs"],
                                       "--save", root / f"scratch-{budget}"], log=NOLOG)
    return results(root, ("sparse", "finetune", "scratch-E", "scratch-B"))


# ----------------------------------------------------------------------------------------------------- EKG
EKG = {"epochs": 3, "train_subset": 1000, "test_subset": 500, "keep_flops": 0.6, "subset_per_class": 16,
       "val_per_class": 8, "search_batch_size": 40, "finetune_epochs": 2}


def ekg(root, seed=1):
    """EKG on its ResNet-20: baseline, search to 60% of the FLOPs (official counter), memory bank of 5 teachers
    over the training images, fine-tune with the bank (two views + KD) and without it (CE), scratch-E, scratch-B;
    cifar/ekg/experiment.sh --quick runs the same scale."""
    key, root, c = "cifar/ekg", Path(root), EKG
    data = data_flags(c["test_subset"])
    train = data + ["--train-subset", c["train_subset"], "--seed", seed] + QUIET
    pruned = root / "pruned" / "pruned.pth.tar"
    stage(key, "train", train + ["--depth", 20, "--epochs", c["epochs"], "--save", root / "baseline"], log=NOLOG)
    stage(key, "prune", data + ["--model", root / "baseline" / "checkpoint.pth.tar", "--keep-flops", c["keep_flops"],
                                "--subset-per-class", c["subset_per_class"], "--val-per-class", c["val_per_class"],
                                "--search-batch-size", c["search_batch_size"], "--bank-images", c["train_subset"],
                                "--save", root / "pruned"], log=NOLOG)
    for name, knowledge in (("finetune", "on"), ("finetune-ce", "off")):
        stage(key, "finetune", train + ["--refine", pruned, "--knowledge", knowledge, "--epochs", c["finetune_epochs"],
                                        "--schedule", "--save", root / name], log=NOLOG)
    for budget in ("E", "B"):
        stage(key, "scratch", train + ["--scratch", pruned, "--budget", budget, "--epochs", c["epochs"],
                                       "--save", root / f"scratch-{budget}"], log=NOLOG)
    return results(root, ("baseline", "finetune", "finetune-ce", "scratch-E", "scratch-B"))


def accuracies(name, res):
    """{stage: final test accuracy} of an experiment's result, the numbers the bars apply to."""
    if name == "lottery":
        out = {"dense": res["rows"][0]["ticket"]["final_prec1"]}
        for r in res["rows"][1:]:
            out[f"round{r['round']} ticket"] = r["ticket"]["final_prec1"]
            out[f"round{r['round']} scratch"] = r["scratch"]["final_prec1"]
        return out
    out = {k: v["final_prec1"] for k, v in res.items() if isinstance(v, dict) and "final_prec1" in v}
    if name == "regression":  # what least squares keeps before any retraining
        out["pruned"] = res["prune"]["acc_after"]
    return out


def write_margins(path, table):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Path(path).write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------------------ ImageNet path
IMAGENET = {"train_per_class": 300, "val_per_class": 50, "image": 36, "input_size": 32, "epochs": 7}


def fashion_mnist_tree(root, train_per_class=IMAGENET["train_per_class"], val_per_class=IMAGENET["val_per_class"],
                       size=IMAGENET["image"]):
    """Fashion-MNIST written once as an ImageFolder JPEG tree (utils.imagefolder.write_fashion_mnist_tree)."""
    from utils.imagefolder import write_fashion_mnist_tree
    return write_fashion_mnist_tree(root, FASHION_MNIST, train_per_class, val_per_class, size)


def imagenet_l1(root, seed=1, tree=None):
    """The ImageNet scripts end to end on the Fashion-MNIST JPEG tree (32 px crops): ResNet-34 at width 1/8
    trained from scratch, pruned by the ResNet-34-A rule, fine-tuned, scratch-E, scratch-B (cap rule)."""
    key, root, c = "imagenet/l1-norm-pruning", Path(root), IMAGENET
    tree = tree or fashion_mnist_tree(root / "tree")
    data = ["--data", tree, "--input-size", c["input_size"], "--workers", 0, "--test-batch-size", 250]
    train = data + ["--seed", seed, "--batch-size", 64, "--loader", "fast"] + QUIET
    pruned = root / "pruned" / "pruned.pth.tar"
    stage(key, "train", train + ["--arch", "resnet", "--depth", 34, "--width", 0.125, "--epochs", c["epochs"],
                                 "--schedule", 5, "--save", root / "baseline"], log=NOLOG)
    stage(key, "prune", data + ["-v", "A", "--model", root / "baseline" / "checkpoint.pth.tar", "--save",
                                root / "pruned"], log=NOLOG)
    stage(key, "finetune", train + ["--refine", pruned, "--epochs", 1, "--lr", 0.01, "--save", root / "finetune"],
          log=NOLOG)
    for budget in ("E", "B"):
        stage(key, "scratch", train + ["--scratch", pruned, "--budget", budget, "--epochs", c["epochs"],
                                       "--schedule", 5, "--save", root / f"scratch-{budget}"], log=NOLOG)
    return results(root, ("baseline", "finetune", "scratch-E", "scratch-B"))


EXPERIMENTS = {"demo": demo, "slimming": slimming, "weight_level": weight_level, "sfp": sfp, "lottery": lottery,
               "imagenet_l1": imagenet_l1, "regression": regression, "sss": sss, "ekg": ekg}
