"""Channel pruning by LASSO regression and least squares (He, Zhang, Sun, ICCV 2017) on the CIFAR networks.

The algorithm and its options (sampling on calibration images with inputs from the network pruned so far and
targets from the original one, LASSO on the Gram matrix of the channel contributions, least squares with intercept,
the residual correction of a ResNet block's last conv) are utils/lasso.py's RegressionRule, shared with
imagenet/regression-pruning; this folder declares the CIFAR networks: the VGGs (default layers: every conv but the
last block's) and the basic-block ResNets (every block's first conv, its second conv reconstructed towards the
original block output).
"""
from models import model_entry
from utils.lasso import RegressionRule
from utils.methods import register_method


@register_method
class RegressionPruning(RegressionRule):
    key = "cifar/regression-pruning"
    name = "regression-pruning"
    paper = "He, Zhang, Sun, Channel Pruning for Accelerating Very Deep Neural Networks, ICCV 2017"
    archs = {"vgg": model_entry("vgg").depths, "resnet": model_entry("resnet").depths}
    defaults = {"train": {"arch": "vgg", "depth": 16}}
