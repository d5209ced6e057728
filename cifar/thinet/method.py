"""ThiNet (Luo, Wu, Lin, ICCV 2017) on the CIFAR networks: channels chosen by how little the next layer's
output changes without them, and the next layer's kept weights rescaled by least squares.

The algorithm and its options (sampling, the greedy on one Gram matrix per layer, least squares, the layer-by-layer
schedule, which layers: every VGG conv but the last block's; in a ResNet the first conv of each basic block, never
a block's output) are utils/thinet.py's ThiNetRule, shared with imagenet/thinet; this folder declares the CIFAR
networks.
"""
from models import model_entry
from utils.methods import register_method
from utils.thinet import ThiNetRule


@register_method
class ThiNet(ThiNetRule):
    key = "cifar/thinet"
    name = "thinet"
    paper = "Luo, Wu, Lin, ThiNet: A Filter Level Pruning Method for Deep Neural Network Compression, ICCV 2017"
    archs = {"vgg": model_entry("vgg").depths, "resnet": model_entry("resnet").depths}
    defaults = {"train": {"arch": "vgg", "depth": 16}}
