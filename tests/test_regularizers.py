import pytest
import torch
from torch.nn import functional as F

from sparsity_lib import BasicNet, RunConfig, conv_bn_layers, vgg
from sparsity_lib.nets.regularizers import explicit_penalty, l1l2_penalty, layer_l1l2, slimming_penalty
from sparsity_lib.pruning.criteria import LI_VGG16_A, l1l2_masks, li_masks, slimming_masks


def small_net(seed=0):
    """A tiny BasicNet in float64, so that gradient differences are not lost to rounding."""
    torch.manual_seed(seed)
    net = BasicNet(width=0.0625, first_width=8, image_size=16).double()
    with torch.no_grad():  # spread gammas over both signs so sign(gamma) is not trivially 1
        for _, _, bn in conv_bn_layers(net):
            bn.weight.copy_(torch.randn(bn.weight.shape))
    return net


def gradients(net, config):
    """Per named parameter, d(task loss + explicit penalty of `config`)/d(param) on a fixed batch."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 16, 16, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), generator=generator)
    net.zero_grad()
    loss = F.cross_entropy(net(x), y)
    penalty = explicit_penalty(net, config)
    (loss if penalty is None else loss + penalty).backward()
    return {name: p.grad.clone() for name, p in net.named_parameters()}


def penalty_gradient(net, config):
    base = gradients(net, RunConfig())
    return {name: grad - base[name] for name, grad in gradients(net, config).items()}


def test_slimming_adds_s_times_sign_gamma_and_nothing_else():
    net = small_net()
    strength = 1e-3
    diff = penalty_gradient(net, RunConfig(slimming_l1=strength))
    gammas = {id(bn.weight) for _, _, bn in conv_bn_layers(net)}
    for name, p in net.named_parameters():
        expected = strength * torch.sign(p.detach()) if id(p) in gammas else torch.zeros_like(p)
        assert torch.allclose(diff[name], expected, rtol=0, atol=1e-12), name


def test_l1l2_gradient_matches_its_closed_form():
    net = small_net()
    strength = 1e-2
    diff = penalty_gradient(net, RunConfig(l1l2=strength))
    conv_weights = {id(conv.weight): conv for _, conv, _ in conv_bn_layers(net)}
    for name, p in net.named_parameters():
        if id(p) not in conv_weights:
            assert torch.allclose(diff[name], torch.zeros_like(p), rtol=0, atol=1e-12), name
            continue
        w = p.detach().flatten(1).double()
        norms = w.norm(dim=1)
        l1, l2 = norms.sum(), norms.norm()
        expected = strength * w / norms[:, None] * (1 / l2 - l1 * norms[:, None] / l2 ** 3)
        assert torch.allclose(diff[name].flatten(1), expected, rtol=1e-9, atol=1e-14), name
        # Degree-0 homogeneity: the gradient is orthogonal to W, so it cannot shrink all of W at once.
        assert abs(float((diff[name] * p.detach()).sum())) < 1e-12


def test_l1l2_is_scale_invariant_and_between_one_and_sqrt_filters():
    conv = torch.nn.Conv2d(4, 9, 3, bias=False)
    before = float(layer_l1l2(conv).detach())
    with torch.no_grad():
        conv.weight.mul_(37.0)
    assert float(layer_l1l2(conv).detach()) == pytest.approx(before, rel=1e-6)
    with torch.no_grad():
        conv.weight.fill_(0.5)  # all filters of equal norm: the maximum sqrt(F)
    assert float(layer_l1l2(conv).detach()) == pytest.approx(3.0, rel=1e-6)
    with torch.no_grad():
        conv.weight[1:] = 0.0  # one filter left: the minimum 1
    assert float(layer_l1l2(conv).detach()) == pytest.approx(1.0, rel=1e-6)


def test_explicit_penalty_is_none_when_off_and_the_sum_when_both_on():
    net = small_net()
    assert explicit_penalty(net, RunConfig()) is None
    both = explicit_penalty(net, RunConfig(slimming_l1=1e-4, l1l2=1e-3))
    expected = slimming_penalty(net, 1e-4) + l1l2_penalty(net, 1e-3)
    assert float(both.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_slimming_masks_mark_the_global_smallest_fraction():
    net = small_net()
    masks = slimming_masks(net, 0.3)
    gammas = torch.cat([bn.weight.detach().abs() for _, _, bn in conv_bn_layers(net)])
    marked = torch.cat([masks[name] for name, _, _ in conv_bn_layers(net)])
    assert int(marked.sum()) == round(0.3 * gammas.numel())
    assert gammas[marked].max() <= gammas[~marked].min()
    with pytest.raises(ValueError, match="fraction=1.5"):
        slimming_masks(net, 1.5)


def test_li_masks_follow_vgg16_pruned_a_and_rank_by_l1():
    torch.manual_seed(0)
    net = vgg(16)
    masks = li_masks(net)
    convs = {name: conv for name, conv, _ in conv_bn_layers(net)}
    for name, mask in masks.items():
        expected = int(LI_VGG16_A.get(name, 0.0) * convs[name].out_channels)
        assert int(mask.sum()) == expected, name
        if expected:
            l1 = convs[name].weight.detach().abs().flatten(1).sum(1)
            assert l1[mask].max() <= l1[~mask].min()
    total = sum(int(m.sum()) for m in masks.values()) / sum(c.out_channels for c in convs.values())
    assert round(100 * total) == 37  # Table 7's "Li et al." column: 37% of 4224 features
    with pytest.raises(ValueError, match="C99"):
        li_masks(net, {"C99": 0.5})


def test_l1l2_masks_find_the_filters_it_zeroed():
    net = small_net()
    conv = conv_bn_layers(net)[2][1]
    with torch.no_grad():
        conv.weight[[1, 4]] *= 1e-4
    masks = l1l2_masks(net)
    assert masks["C3"].nonzero().flatten().tolist() == [1, 4]
    with pytest.raises(ValueError, match="threshold=2"):
        l1l2_masks(net, 2)
