"""Export a weight-level-pruned checkpoint (pruned, fine-tuned or scratch-trained) to torch.nn.utils.prune's
form: its 'state_dict' holds X.weight_orig and X.weight_mask for every masked conv weight, exactly the keys of
a network pruned with torch.nn.utils.prune.custom_from_mask; the file also carries our architecture spec,
so prune.py, finetune.py and scratch.py read it back.
Example: python cifar/weight-level/export_torch_prune.py --model logs/wl/vgg19/p0.3/finetune/checkpoint.pth.tar \\
             --out vgg19_p0.3_torch_prune.pth
Then, in plain PyTorch: build the network, prune.identity(conv, "weight") for each masked conv (or
custom_from_mask), and load_state_dict(torch.load(out)["state_dict"]).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.errors import run_main  # noqa: E402
from utils.hparams import build_parser, parse  # noqa: E402
from utils.masks import ExportArgs, export_torch_prune  # noqa: E402

if __name__ == "__main__":
    run_main(lambda argv: export_torch_prune(*parse(build_parser(__doc__, ExportArgs), (ExportArgs,), argv)))
