#!/usr/bin/env bash
# Weight-level (unstructured) pruning of torchvision's pretrained ResNet-50 (the paper's Table 6, ImageNet rows):
# prune --percent P (0.3, 0.6) -> fine-tune (10 epochs, lr 0.001), scratch-E (90 epochs), scratch-B (int(90 r)
# epochs, no cap), all with the mask enforced. Options: experiment.sh --help.
# Example: bash imagenet/weight-level/run_resnet50.sh --data /data/imagenet --pretrained resnet50-0676ba61.pth \
#              --percent "0.3 0.6" -- --device cuda --amp --channels-last --loader fast
PROG="$(basename "$0")" ARCH=resnet50 exec bash "$(dirname "$0")/experiment.sh" "$@"
