"""Turn a channel-selection network (network slimming's PreResNet and DenseNet) into the equivalent compact one.

    python -m utils.compact --model logs/slim/pruned/pruned.pth.tar --out logs/slim/pruned/compact.pth.tar
    python -m utils.compact --model logs/slim/finetune/model_best.pth.tar --out deploy.pth.tar

The reference's layout keeps every BatchNorm in front of a selection at full width and gathers after it, and a
DenseNet keeps computing channels that no later layer selects. The compact network gathers first (the BN holds
only the selected channels) and drops unread produced channels from the convs that make them: the same function
(its outputs are checked against the original's before anything is written), fewer FLOPs, no wasted memory
traffic. It loads like any checkpoint of this repo (spec + state_dict) and can be fine-tuned or pruned again;
for scratch-B budgets keep using the pruned.pth.tar of prune.py, whose FLOPs are the reference's convention.
"""
import os
import sys
from dataclasses import dataclass
from typing import Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils.checkpoint import (check_writable, load_checkpoint, model_from_checkpoint, run_lock,  # noqa: E402
                              save_checkpoint, spec_fields)
from utils.errors import UserError, run_main  # noqa: E402
from utils.flops import model_costs  # noqa: E402
from utils.hparams import build_parser, hp, parse  # noqa: E402

TOLERANCE = 1e-4  # relative difference of the logits allowed (float reassociation only)


def compact(model, flag="--model", path=""):
    """(the compact equivalent of ``model``, max relative output difference on random inputs)."""
    make = getattr(model, "compact_model", None)
    if make is None:
        raise UserError(f"{flag} {path}: {model.spec.arch} has no channel selection; its pruned network is already "
                        f"compact")
    small = make()
    spec = model.spec
    x = torch.randn(8, spec.in_channels, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(0))
    model_was, small_was = model.training, small.training
    with torch.no_grad():
        ref, got = model.eval()(x), small.eval()(x)
    model.train(model_was)
    small.train(small_was)
    diff = float((ref - got).abs().max() / ref.abs().max().clamp_min(1e-12))
    if diff > TOLERANCE:
        raise RuntimeError(f"compact network differs from the original by {diff:.2e} (relative)")
    return small, diff


def compact_record(model, small, diff):
    before, after = model_costs(model), model_costs(small)
    return {"params_compact": after["params"], "flops_compact": after["flops"], "macs_compact": after["macs"],
            "params_before_compact": before["params"], "flops_before_compact": before["flops"],
            "compact_max_rel_diff": diff}


@dataclass
class CompactArgs:
    model: Optional[str] = hp(None, "checkpoint of a channel-selection network (pruned.pth.tar, or a fine-tune / "
                                    "scratch checkpoint)")
    out: Optional[str] = hp(None, "output checkpoint (spec + state_dict of the compact network)")


def main(argv=None, log=print):
    (args,) = parse(build_parser(__doc__, CompactArgs), (CompactArgs,), argv)
    if not args.out:
        raise UserError("--out is required")
    if args.model and os.path.abspath(args.out) == os.path.abspath(args.model):
        raise UserError(f"--out {args.out}: would overwrite --model")
    ckpt = load_checkpoint(args.model, "--model")
    if "model" not in ckpt:
        raise UserError(f"--model {args.model}: no architecture spec (a reference checkpoint?); prune it with this "
                        f"repo's prune.py first")
    model = model_from_checkpoint(ckpt, args.model, "--model")
    small, diff = compact(model, "--model", args.model)
    folder = os.path.dirname(os.path.abspath(args.out))
    check_writable(folder, "--out")
    record = compact_record(model, small, diff)
    with run_lock(folder, "--out"):
        save_checkpoint({**spec_fields(small, ckpt.get("dataset")), "state_dict": small.state_dict(),
                         "source": os.path.abspath(args.model), "compact": record}, os.path.abspath(args.out))
    log(f"{model.spec.arch}-{model.spec.depth}: compact network -> {args.out}; params {record['params_before_compact']:,}"
        f" -> {record['params_compact']:,}, FLOPs {record['flops_before_compact']:,} -> {record['flops_compact']:,}; "
        f"outputs equal to {diff:.1e} (relative)")
    return record


if __name__ == "__main__":
    run_main(main)
