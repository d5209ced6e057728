#!/usr/bin/env bash
# EKG on ResNet-56 (projection shortcuts), keeping <= 45% of its FLOPs by the official counter (the official README's
# --search_target_rate 0.45). Example: bash cifar/ekg/run_resnet56.sh --seeds "1 2 3" -- --device cuda --amp
PROG="$(basename "$0")" ARCH=resnet_ekg DEPTH=56 exec bash "$(dirname "$0")/experiment.sh" "$@"
