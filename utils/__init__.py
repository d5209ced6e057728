"""Shared engine: data, training loop, FLOPs, checkpoints, pruning surgery, CLI helpers."""
