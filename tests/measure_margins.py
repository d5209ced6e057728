"""Measure the real-data end-to-end experiments over several seeds, to set their tests' accuracy bars with a margin.

    python tests/measure_margins.py --seeds 1 2 3 4            # every experiment
    python tests/measure_margins.py --only sfp thinet --seeds 1 2 3

Prints, per experiment and stage, the final test accuracy of every seed and the lowest; the bars in
tests/test_e2e_*.py sit well below the lowest (each test states the measured range). Not a test: it takes tens of
minutes on a 2-core CPU (one thread per run, as the tests run).
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--only", nargs="+", choices=list(e2e.EXPERIMENTS) + ["thinet"], help="experiments to run")
    args = p.parse_args()
    import torch
    torch.set_num_threads(1)
    names = args.only or list(e2e.EXPERIMENTS) + ["thinet"]
    table = {}
    for name in names:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.time()
                if name == "thinet":
                    base = e2e.demo(Path(tmp), seed)
                    res = e2e.thinet(Path(tmp) / "thinet", seed, base["root"] / "baseline" / "checkpoint.pth.tar")
                else:
                    res = e2e.EXPERIMENTS[name](Path(tmp), seed)
                for stage, acc in e2e.accuracies(name, res).items():
                    table.setdefault(name, {}).setdefault(stage, {})[seed] = acc
                print(f"{name} seed {seed}: {time.time() - start:.0f} s, "
                      + ", ".join(f"{s} {a:.3f}" for s, a in e2e.accuracies(name, res).items()), flush=True)
    print("\n| experiment | stage | " + " | ".join(f"seed {s}" for s in args.seeds) + " | lowest | mean |")
    print("|---|---|" + "---|" * (len(args.seeds) + 2))
    for name, stages in table.items():
        for stage, by_seed in stages.items():
            values = [by_seed[s] for s in args.seeds]
            print(f"| {name} | {stage} | " + " | ".join(f"{v:.3f}" for v in values)
                  + f" | {min(values):.3f} | {statistics.fmean(values):.3f} |")


if __name__ == "__main__":
    main()
