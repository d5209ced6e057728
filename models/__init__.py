"""The shared model zoo. Importing it registers every architecture."""
from .registry import (ModelSpec, build_from_spec, create_model, default_cfg, list_models, option_kwargs,  # noqa: F401,E501
                       model_entry, resolve_arch, scale_cfg)
from . import vgg, resnet, preresnet, densenet, resnet_wl, resnet_sfp, resnet_ekg  # noqa: F401,E402  (registration)
from . import bearpaw  # noqa: F401,E402  (weight-level VGG/PreResNet/DenseNet)
from . import imagenet  # noqa: F401,E402  (ImageNet ResNet/VGG/SSS PreResNet)
from . import imagenet_ekg  # noqa: F401,E402  (EKG's ImageNet ResNet)
from .layers import ChannelGroup, ChannelSelection  # noqa: F401,E402
