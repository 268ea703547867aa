import math

import pytest
import torch

from sparsity_lib import BasicNet, conv_bn_layers, conv_parameter_count, feature_count, make_model, vgg
from sparsity_lib.nets.models import WIDTH_VARIANTS


def test_basicnet_matches_paper_counts():
    net = BasicNet()
    assert conv_parameter_count(net) == 4_649_664
    assert feature_count(net) == 1856
    assert [c.out_channels for _, c, _ in conv_bn_layers(net)] == [64, 128, 128, 256, 256, 512, 512]
    assert conv_bn_layers(net)[0][1].kernel_size == (5, 5)


@pytest.mark.parametrize("depth,features", [(11, 2752), (16, 4224), (19, 5504)])
def test_vgg_feature_counts(depth, features):
    assert feature_count(vgg(depth)) == features
    assert [name for name, _, _ in conv_bn_layers(vgg(depth))][-1] == f"C{depth - 3}"


def test_width_variants():
    channels = {}
    for name, (first, width) in WIDTH_VARIANTS.items():
        net = BasicNet(first_width=first, width=width)
        channels[name] = [c.out_channels for _, c, _ in conv_bn_layers(net)]
    assert channels["64-0.5x"] == [64, 64, 64, 128, 128, 256, 256]
    assert channels["32-0.25x"] == [32, 32, 32, 64, 64, 128, 128]


@pytest.mark.parametrize("head,size,classes", [("cifar", 32, 10), ("tinyimagenet", 64, 200), ("imagenet", 224, 1000)])
def test_basicnet_heads_output_shape(head, size, classes):
    net = BasicNet(num_classes=classes, head=head, image_size=size, width=0.125, first_width=8).eval()
    assert net(torch.randn(2, 3, size, size)).shape == (2, classes)


def test_vgg_tinyimagenet_head():
    net = vgg(16, 200, head="tinyimagenet", width=0.125).eval()
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 200)
    hidden = [m.out_features for m in net.classifier if isinstance(m, torch.nn.Linear)]
    assert hidden == [512, 256, 200]


def test_init_bn_and_xavier():
    net = BasicNet(bn_weight_init=0.5, bn_bias_init=-0.1)
    for _, conv, bn in conv_bn_layers(net):
        assert torch.all(bn.weight == 0.5) and torch.all(bn.bias == -0.1)
    conv = conv_bn_layers(net)[1][1]
    fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
    bound = math.sqrt(2.0) * math.sqrt(6.0 / (fan_in + fan_out))
    assert conv.weight.abs().max() <= bound + 1e-6
    assert conv.weight.abs().max() > 0.9 * bound


def test_leaky_relu_and_bad_names():
    net = make_model("basicnet", 10, activation="leaky_relu", negative_slope=0.1, width=0.125, first_width=8)
    acts = [m for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert acts and all(a.negative_slope == 0.1 for a in acts)
    with pytest.raises(ValueError, match="model='resnet'.*basicnet"):
        make_model("resnet", 10)
    with pytest.raises(ValueError, match="activation='gelu'"):
        BasicNet(activation="gelu")
