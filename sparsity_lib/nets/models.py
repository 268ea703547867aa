"""Networks of the paper: BasicNet (Sec. 2.1, Fig. 1) and VGG-11/16/19 with BatchNorm (Sec. 5).

Every convolution is followed by BatchNorm and an activation, wrapped in a `ConvBlock`, so that
metrics and the pruner find the (conv, bn) pairs through `conv_bn_layers` alone.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_choice

__all__ = ["activate", "activation_fn", "ACTIVATIONS", "BasicNet", "basicnet_layers", "BASICNET_POOL_AFTER",
           "BASICNET_WIDTHS", "conv_bn_layers", "conv_parameter_count", "ConvBlock", "feature_count", "HEADS",
           "init_weights", "layer_names", "make_activation", "make_model", "mlp_head", "MODELS", "VGG", "vgg",
           "VGG_CONFIGS", "WIDTH_VARIANTS"]

MODELS = ("basicnet", "vgg11", "vgg16", "vgg19")
ACTIVATIONS = ("relu", "leaky_relu")
HEADS = ("cifar", "tinyimagenet", "imagenet")

# BasicNet C2..C7 at width 1.0; C1 is `first_width`. Pooling after C2, C4 and C6 (the paper does
# not state where it pools; this is our choice, also used by docs/calibration.md).
BASICNET_WIDTHS = (128, 128, 256, 256, 512, 512)
BASICNET_POOL_AFTER = (2, 4, 6)
VGG_CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}
# Named BasicNet width variants of Table 6: name -> (first_width, width).
WIDTH_VARIANTS = {"64-1x": (64, 1.0), "64-0.5x": (64, 0.5), "32-0.25x": (32, 0.25)}


def layer_names(name: str) -> tuple[str, ...]:
    """The conv feature layer names (C1, C2, ...) of model `name`, as `conv_bn_layers` names them."""
    check_choice("model", name, MODELS)
    count = len(BASICNET_WIDTHS) + 1 if name == "basicnet" else sum(item != "M" for item in VGG_CONFIGS[int(name[3:])])
    return tuple(f"C{i}" for i in range(1, count + 1))


def make_activation(activation: str = "relu", negative_slope: float = 0.01) -> nn.Module:
    """ReLU, or Leaky ReLU with `negative_slope` (supplement Sec. 1)."""
    check_choice("activation", activation, ACTIVATIONS)
    if activation == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope, inplace=True)


def activate(act: nn.Module, values: torch.Tensor) -> torch.Tensor:
    """`act` (ReLU or LeakyReLU) applied out of place: the modules are built with inplace=True."""
    if isinstance(act, nn.LeakyReLU):
        return F.leaky_relu(values, act.negative_slope)
    return F.relu(values)


class ConvBlock(nn.Module):
    """conv (no bias) -> BatchNorm -> activation: one "feature layer" of the paper."""

    def __init__(self, in_channels, out_channels, kernel_size, activation="relu", negative_slope=0.01):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(activation, negative_slope)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def mlp_head(in_features: int, hidden: tuple[int, ...], num_classes: int, activation="relu",
             negative_slope=0.01) -> nn.Sequential:
    """fc [h] -> BN -> act for each hidden size, then fc [classes] (the paper's '[h][classes]')."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), make_activation(activation, negative_slope)]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


def init_weights(model: nn.Module, bn_weight_init: float = 1.0, bn_bias_init: float = 0.0) -> None:
    """Xavier init with ReLU gain for conv/fc weights; conv BN gamma/beta set to the given values."""
    gain = nn.init.calculate_gain("relu")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight, gain=gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for _, _, bn in conv_bn_layers(model):
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.constant_(bn.bias, bn_bias_init)


def _head(head: str, channels: int, spatial: int, num_classes: int, activation, negative_slope, imagenet_hidden):
    """Pooling + fc stack for one of HEADS; `spatial` is the feature map side after the convs."""
    check_choice("head", head, HEADS)
    if head == "imagenet":
        pooled = (spatial - 5) // 4 + 1
        if pooled < 1:
            raise ValueError(f"image_size too small for head='imagenet' (feature map {spatial}x{spatial} < 5)")
        pool = nn.AvgPool2d(kernel_size=5, stride=4)
        return pool, mlp_head(channels * pooled * pooled, imagenet_hidden, num_classes, activation, negative_slope)
    hidden = (256,) if head == "cifar" else (512, 256)
    return nn.AdaptiveAvgPool2d(1), mlp_head(channels, hidden, num_classes, activation, negative_slope)


class BasicNet(nn.Module):
    """The paper's 7-conv BasicNet (Fig. 1): C1 5x5, C2..C7 3x3, each conv -> BN -> act.

    `first_width` sets C1's features; `width` scales C2..C7 from (128,128,256,256,512,512).
    At width 1.0 the conv layers hold 4,649,664 parameters and 1856 features.
    Heads: 'cifar' = GAP, [256][classes]; 'tinyimagenet' = GAP, [512][256][classes];
    'imagenet' = avg-pool k5 s4, [4096][2048][classes] (Sec. 5).
    """

    def __init__(self, num_classes=10, width=1.0, first_width=64, activation="relu", negative_slope=0.01,
                 head="cifar", image_size=32, bn_weight_init=1.0, bn_bias_init=0.0):
        super().__init__()
        if width <= 0 or first_width < 1:
            raise ValueError(f"width={width} and first_width={first_width} must be positive")
        channels = [first_width] + [max(1, round(c * width)) for c in BASICNET_WIDTHS]
        layers: list[nn.Module] = []
        in_channels, spatial = 3, image_size
        for index, out_channels in enumerate(channels, start=1):
            layers.append(ConvBlock(in_channels, out_channels, 5 if index == 1 else 3, activation, negative_slope))
            if index in BASICNET_POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
                spatial //= 2
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool, self.classifier = _head(head, in_channels, spatial, num_classes, activation, negative_slope,
                                           imagenet_hidden=(4096, 2048))
        init_weights(self, bn_weight_init, bn_bias_init)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


class VGG(nn.Module):
    """VGG with BatchNorm after every conv (Simonyan & Zisserman), heads as in the paper's Sec. 5.

    'cifar' = [512][classes] after the last pool; 'tinyimagenet' = GAP, [512][256][classes];
    'imagenet' = the original head (adaptive avg-pool 7x7, [4096][4096][classes] with dropout).
    """

    def __init__(self, depth=16, num_classes=10, head="cifar", width=1.0, activation="relu",
                 negative_slope=0.01, bn_weight_init=1.0, bn_bias_init=0.0):
        super().__init__()
        check_choice("depth", depth, tuple(VGG_CONFIGS))
        check_choice("head", head, HEADS)
        layers: list[nn.Module] = []
        in_channels = 3
        for item in VGG_CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out_channels = max(1, round(item * width))
            layers.append(ConvBlock(in_channels, out_channels, 3, activation, negative_slope))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        if head == "imagenet":
            self.pool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(in_channels * 49, 4096), nn.ReLU(inplace=True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(4096, num_classes))
        else:
            hidden = (512,) if head == "cifar" else (512, 256)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = mlp_head(in_channels, hidden, num_classes, activation, negative_slope)
        init_weights(self, bn_weight_init, bn_bias_init)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def vgg(depth: int, num_classes: int = 10, head: str = "cifar", **kwargs) -> VGG:
    """VGG-11/16/19 with BN; see `VGG` for heads and keyword arguments."""
    return VGG(depth=depth, num_classes=num_classes, head=head, **kwargs)


def make_model(name: str, num_classes: int, *, image_size: int = 32, head: str = "cifar", width: float = 1.0,
               first_width: int = 64, activation: str = "relu", negative_slope: float = 0.01,
               bn_weight_init: float = 1.0, bn_bias_init: float = 0.0) -> nn.Module:
    """Build one of MODELS by name (the path `train` uses)."""
    check_choice("model", name, MODELS)
    common = dict(num_classes=num_classes, head=head, width=width, activation=activation,
                  negative_slope=negative_slope, bn_weight_init=bn_weight_init, bn_bias_init=bn_bias_init)
    if name == "basicnet":
        return BasicNet(first_width=first_width, image_size=image_size, **common)
    return VGG(depth=int(name[3:]), **common)


def conv_bn_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d, nn.BatchNorm2d]]:
    """The ordered (name, conv, bn) triples of a model's conv feature layers, named C1, C2, ..."""
    blocks = [m for m in model.modules() if isinstance(m, ConvBlock)]
    return [(f"C{i}", block.conv, block.bn) for i, block in enumerate(blocks, start=1)]


def conv_parameter_count(model: nn.Module) -> int:
    """Number of conv weights (the paper's '% of conv params' denominator)."""
    return sum(conv.weight.numel() + (conv.bias.numel() if conv.bias is not None else 0)
               for _, conv, _ in conv_bn_layers(model))


def feature_count(model: nn.Module) -> int:
    """Number of conv features (output channels) over all conv layers: 1856 for BasicNet 64-1x."""
    return sum(conv.out_channels for _, conv, _ in conv_bn_layers(model))


def activation_fn(model: nn.Module):
    """The activation module used after each conv BN (ReLU or LeakyReLU) of `model`."""
    block = next(m for m in model.modules() if isinstance(m, ConvBlock))
    return block.act



# ------------------------------------------------------------------- chapter 1 (Sec. 2.1)
def basicnet_layers(width: float, first_width: int) -> pd.DataFrame:
    """BasicNet's conv layers (Sec. 2.1, Fig. 1), counted from our model: kernel, inputs, features and
    conv weights of the paper's 64-1x network, and the features of the `width`/`first_width` version."""
    full, small = BasicNet(), BasicNet(width=width, first_width=first_width)
    rows = [{"layer": name, "kernel": "x".join(map(str, conv.kernel_size)), "inputs": conv.in_channels,
             "features": conv.out_channels, "conv weights": conv.weight.numel(), "ours": mine.out_channels}
            for (name, conv, _), (_, mine, _) in zip(conv_bn_layers(full), conv_bn_layers(small))]
    return pd.DataFrame(rows).set_index("layer")
