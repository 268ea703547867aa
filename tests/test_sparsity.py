import numpy as np
import pytest
import torch

from sparsity_lib import (
    BasicNet,
    activation_sparsity,
    conv_bn_layers,
    evaluate,
    feature_universality,
    gamma_masks,
    gamma_sparsity,
    total_percent,
    zero_inactive,
)


def batches(count=4, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 16, 16, generator=generator), torch.randint(0, 10, (size,), generator=generator))
            for _ in range(count)]


@pytest.fixture
def net():
    torch.manual_seed(0)
    model = BasicNet(width=0.0625, first_width=8, image_size=16).eval()
    # Warm up BN running statistics so eval-mode outputs are realistic.
    model.train()
    with torch.no_grad():
        for x, _ in batches(8):
            model(x)
    return model.eval()


def kill(model, layer, features, beta=-1.0, gamma=1e-5):
    bn = dict((name, bn) for name, _, bn in conv_bn_layers(model))[layer]
    with torch.no_grad():
        bn.weight[features] = gamma
        bn.bias[features] = beta


def test_gamma_sparsity_counts(net):
    kill(net, "C2", [0, 3])
    kill(net, "C7", [1])
    frame = gamma_sparsity(net)
    counts = dict(zip(frame.layer, frame.inactive))
    assert counts["C2"] == 2 and counts["C7"] == 1 and counts["C1"] == 0
    assert frame.loc[frame.layer == "C2", "percent"].item() == pytest.approx(100 * 2 / 8)
    assert total_percent(frame) == pytest.approx(100 * 3 / frame.features.sum())


def test_activation_sparsity_sees_negative_beta_only(net):
    kill(net, "C3", [0, 1], beta=-1.0)          # dead: ReLU(tiny*x - 1) = 0
    kill(net, "C3", [2], beta=+0.5)             # gamma-dead but outputs a constant 0.5
    frame = activation_sparsity(net, batches())
    counts = dict(zip(frame.layer, frame.inactive))
    assert counts["C3"] == 2
    assert gamma_sparsity(net).set_index("layer").loc["C3", "inactive"] == 3


def test_zeroing_dead_features_keeps_predictions(net):
    kill(net, "C4", [0, 1, 2])
    kill(net, "C6", list(range(5)))
    zeroed = zero_inactive(net, gamma_masks(net))
    x, y = batches(1, 32)[0]
    assert torch.equal(net(x).argmax(1), zeroed(x).argmax(1))
    assert torch.allclose(net(x), zeroed(x), atol=1e-4)
    assert evaluate(net, batches()) == pytest.approx(evaluate(zeroed, batches()), abs=1e-4)
    # The original is untouched and the copy really has zeros.
    assert conv_bn_layers(net)[3][2].weight[0] != 0
    assert conv_bn_layers(zeroed)[3][2].weight[0] == 0


def test_universality(net):
    kill(net, "C5", [0], beta=-1.0)                 # never fires: 0 %
    kill(net, "C5", [1], beta=+2.0, gamma=1.0)      # fires on every image: 100 %
    universality = feature_universality(net, batches())
    assert universality["C5"][0] == 0.0
    assert universality["C5"][1] == 100.0
    assert all(np.all((u >= 0) & (u <= 100)) for u in universality.values())
