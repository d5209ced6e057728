"""The ImageNet scripts on real images at CPU scale: Fashion-MNIST written as an ImageFolder JPEG tree (the first 300
training and 50 test images of each class, 36 px, read through the ImageNet loaders with 32 px crops), L1-norm
pruning (imagenet/l1-norm-pruning: ResNet-34 at 1/8 width, -v A and B) and weight-level pruning
(imagenet/weight-level: ResNet-50 at 1/8 width, 30% and 60%), baseline -> prune -> fine-tune, scratch-E,
scratch-B, over three seeds; then the results table (utils/results.py). Each stage is the library call of its
script (utils/cli.py's Call) in a worker process, as cifar/study.py runs the CIFAR study; finished stages are skipped
and interrupted ones resume, so rerunning the command continues a killed study.

    python imagenet/study.py                          # OUT = study_runs/imagenet-fashionmnist (~15 min, 2 jobs)
    python imagenet/study.py --seeds 1 --dry-run      # the commands only

Budgets in the ImageNet recipes' proportions: the trunk E = 7 epochs (the recipes' 90) with the LR x0.1 after epoch
5; fine-tuning round(E x 20/90) = 2 epochs (L1-norm) and round(E x 10/90) = 1 (weight-level) at the recipes' lr
0.001; scratch-E E epochs; scratch-B what each folder's scratch.py computes from E (L1-norm: the reference's cap
rule; weight-level: int(E x FLOPs ratio of the nonzero weights)). Batch 64, the fast loader, no workers.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from models import model_entry  # noqa: E402
from utils import stages  # noqa: E402
from utils.cli import Call, args_for, given  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.hparams import OneLineParser  # noqa: E402
from utils.methods import get_method  # noqa: E402
from utils.sweep import Step, command, duration, execute, from_root, shown, write_table  # noqa: E402

TREE = {"train_per_class": 300, "val_per_class": 50, "size": 36}
SCALE = {"epochs": 7, "lr_drop": 5, "input_size": 32, "batch_size": 64, "width": 0.125}
# method key -> (folder, model folder, --arch, depth, [(ratio folder, prune options)], fine-tune epochs of 90)
METHODS = {
    "l1-norm": ("imagenet/l1-norm-pruning", "resnet34", "resnet", 34,
                [("A", {"variant": "A"}), ("B", {"variant": "B"})], 20),
    "weight-level": ("imagenet/weight-level", "resnet50", "resnet50", 50,
                     [("p0.3", {"percent": 0.3}), ("p0.6", {"percent": 0.6})], 10),
}


def plan(out, tree, seeds, methods):
    e = SCALE["epochs"]
    steps = []
    for seed in seeds:
        for name in methods:
            key, model_dir, arch, depth, ratios, ft_paper = METHODS[name]
            method = get_method(key)
            arch, depth = stages.resolve_alias(method, arch, depth)  # the folder's spelling -> the zoo's name
            options = given(model_entry(arch).options, width=SCALE["width"])
            common = dict(data=tree, input_size=SCALE["input_size"], workers=0, loader="fast")

            def data(stage):
                return args_for(stages.ImageDataArgs, method, stage, batch_size=SCALE["batch_size"],
                                test_batch_size=250, **common)

            def train(stage, save, **values):
                return args_for(stages.TrainArgs, method, stage, seed=seed, progress=False, tensorboard=False,
                                save=save, **values)

            trunk = None
            for ratio, prune_options in ratios:
                run = os.path.join(out, name, model_dir, ratio, f"seed{seed}")
                tag = f"{name}/{model_dir}/{ratio}/seed{seed}"
                link = None
                if trunk is None:
                    trunk = os.path.join(run, "baseline")
                    call = Call("train", key, (given(stages.ModelArgs, arch=arch, depth=depth), data("train"),
                                               train("train", trunk, epochs=e, lr=0.1, schedule=[SCALE["lr_drop"]])),
                                method.TrainHparams(), options)
                    steps.append(Step(f"{tag} baseline", "train", trunk, call))
                else:
                    link = (os.path.join(run, "baseline"), trunk)
                pruned = os.path.join(run, "pruned")
                ckpt = os.path.join(pruned, "pruned.pth.tar")
                prune_args = given(stages.PruneArgs, model=os.path.join(trunk, "checkpoint.pth.tar"), save=pruned)
                eval_data = args_for(stages.ImageEvalDataArgs, method, "prune", test_batch_size=250, **common)
                steps.append(Step(f"{tag} pruned", "prune", pruned,
                                  Call("prune", key, (prune_args, eval_data), given(method.Hparams, **prune_options),
                                       options), needs=[("train", trunk)], link=link))
                ft_save = os.path.join(run, "finetune")
                steps.append(Step(f"{tag} finetune", "train", ft_save,
                                  Call("finetune", key, (given(stages.FinetuneArgs, refine=ckpt), data("finetune"),
                                                         train("finetune", ft_save,
                                                               epochs=max(1, round(e * ft_paper / 90)))),
                                       method.FinetuneHparams(), options), needs=[("prune", pruned)]))
                for budget in ("E", "B"):
                    save = os.path.join(run, f"scratch-{budget}")
                    steps.append(Step(f"{tag} scratch-{budget}", "train", save,
                                      Call("scratch", key, (given(stages.ScratchArgs, scratch=ckpt, budget=budget),
                                                            data("scratch"), train("scratch", save, epochs=e, lr=0.1,
                                                                                   schedule=[SCALE["lr_drop"]])),
                                           method.ScratchHparams(), options), needs=[("prune", pruned)]))
    return steps


def parse_args(argv):
    p = OneLineParser(prog="study.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="study_runs/imagenet-fashionmnist", help="study folder (default: %(default)s)")
    p.add_argument("--data", help="Fashion-MNIST (default: ./data, then /usr/share/datasets/fashion-mnist)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), metavar="METHOD",
                   help=f"methods: {', '.join(METHODS)} (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], metavar="K", help="seeds (default: 1 2 3)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="stages at once (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per stage (default: %(default)s)")
    p.add_argument("--metric", choices=["best", "final"], default="best", help="table accuracy (default: best)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run and write nothing")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.threads < 0:
        raise UserError("--jobs must be at least 1 and --threads at least 0")
    if any(s < 0 for s in args.seeds):
        raise UserError(f"--seeds {' '.join(map(str, args.seeds))}: whole numbers >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = from_root(args.out)
    tree = os.path.join(out, "tree")
    steps = plan(out, tree, args.seeds, args.methods)
    if args.dry_run:
        for step in steps:
            print(f"# {step.label}")
            print("python " + shown(command(step)[1:]))
        return
    from utils.imagefolder import write_fashion_mnist_tree
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    write_fashion_mnist_tree(tree, args.data, **{k: TREE[k] for k in ("train_per_class", "val_per_class")},
                             size=TREE["size"])
    ran, skipped, failed, blocked = execute(steps, args.jobs, args.threads)
    wall = time.time() - t0
    print(f"{ran} step(s) run, {skipped} skipped; total wall time {duration(wall)}")
    record = os.path.join(out, "study.json")
    invocations = json.load(open(record)) if os.path.exists(record) else []
    invocations.append({"argv": list(argv if argv is not None else sys.argv[1:]), "wall_s": round(wall, 1),
                        "steps_run": ran})
    with open(record, "w") as f:
        json.dump(invocations, f, indent=2)
    total = sum(i["wall_s"] for i in invocations if i["steps_run"])
    header = "\n".join([
        "# The ImageNet scripts on Fashion-MNIST as a JPEG tree (CPU scale)", "",
        f"Tree: the first {TREE['train_per_class']} training and {TREE['val_per_class']} test images per class, "
        f"{TREE['size']} px JPEGs, {SCALE['input_size']} px crops (the reference loader's random-resized crop and "
        f"flip, through --loader fast); networks at {SCALE['width']:g} width; trunk E = {SCALE['epochs']} epochs "
        f"(LR x0.1 after {SCALE['lr_drop']}), fine-tune E x 20/90 (L1-norm) or 10/90 (weight-level) at lr 0.001, "
        f"scratch-E E, scratch-B by each folder's rule; batch {SCALE['batch_size']}; seeds "
        f"{' '.join(map(str, args.seeds))}; wall time {duration(total)} with --jobs {args.jobs}.", ""])
    write_table(out, header, args.metric, plot=False)
    if failed or blocked:
        raise UserError(f"{len(failed)} step(s) failed, {len(blocked)} blocked (see their log.txt)")


if __name__ == "__main__":
    run_main(main)
