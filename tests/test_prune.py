import pytest
import torch
from torch import nn

from sparsity_lib import BasicNet, RunStore, conv_bn_layers, vgg, zero_inactive
from sparsity_lib.pruning.costs import fold_bn, layer_costs
from sparsity_lib.pruning.finetune import fine_tune
from sparsity_lib.pruning.runner import prune_or_load
from sparsity_lib.pruning.surgery import dead_masks, prune_features, prune_inactive, zeroed_reference
from sparsity_lib.runs.execution import Execution


def warmed(model, size, steps=6, seed=0):
    """`model` in eval mode with BN running statistics from a few random batches."""
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(16, 3, size, size, generator=generator))
    return model.eval()


def tiny_basicnet():
    """BasicNet 8-0.0625x for 16x16 inputs, seed 0, BN statistics warmed."""
    torch.manual_seed(0)
    return warmed(BasicNet(width=0.0625, first_width=8, image_size=16), 16)


@pytest.fixture(params=["basicnet", "vgg11"])
def net_and_size(request):
    if request.param == "basicnet":
        return tiny_basicnet(), 16
    torch.manual_seed(0)
    return warmed(vgg(11, width=0.0625), 32), 32


def inputs(size, count=8, seed=1):
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def kill_random(model, sign, fraction=0.4, layers=None, seed=0):
    """Mark a random `fraction` of features dead (gamma in (0, 1e-3)) with beta of the given sign."""
    generator = torch.Generator().manual_seed(seed)
    for name, _, bn in conv_bn_layers(model):
        if layers is not None and name not in layers:
            continue
        count = bn.weight.numel()
        chosen = torch.randperm(count, generator=generator)[:max(1, int(fraction * count))]
        bn.weight[chosen] = torch.rand(len(chosen), generator=generator) * 9e-4 + 1e-5
        bn.bias[chosen] = sign * (0.1 + torch.rand(len(chosen), generator=generator))
    return model


@torch.no_grad()
def test_negative_beta_pruning_is_exact(net_and_size):
    net, size = net_and_size
    kill_random(net, sign=-1.0)
    masks = dead_masks(net)
    pruned, report = prune_inactive(net, input_shape=(1, 3, size, size))
    x = inputs(size)
    reference = zeroed_reference(net, masks)
    assert torch.allclose(pruned(x), reference(x), atol=1e-5)
    assert torch.equal(pruned(x).argmax(1), net(x).argmax(1))
    removed = sum(int(m.sum()) for m in masks.values())
    assert removed > 0 and report.folded == 0
    assert report.totals()["features_after"] == report.totals()["features_before"] - removed


@torch.no_grad()
def test_positive_beta_carry_is_exact_everywhere(net_and_size):
    net, size = net_and_size
    kill_random(net, sign=+1.0, seed=3)
    masks = dead_masks(net)
    pruned, report = prune_inactive(net, borders="carry", input_shape=(1, 3, size, size))
    x = inputs(size)
    assert report.folded > 0
    assert torch.allclose(pruned(x), zeroed_reference(net, masks)(x), atol=1e-4)
    # Dropping the constants instead of carrying them would change the output.
    assert not torch.allclose(zero_inactive(net, masks)(x), zeroed_reference(net, masks)(x), atol=1e-3)


def bn_outputs(model, layer):
    captured = {}
    bn = dict((name, bn) for name, _, bn in conv_bn_layers(model))[layer]
    handle = bn.register_forward_hook(lambda _m, _i, out: captured.setdefault("out", out.clone()))
    return captured, handle


@torch.no_grad()
def test_positive_beta_fold_is_exact_inside_and_approximate_at_borders():
    net = tiny_basicnet()
    kill_random(net, sign=+1.0, layers={"C3"}, fraction=0.5)
    masks = dead_masks(net)
    pruned, report = prune_inactive(net, input_shape=(1, 3, 16, 16))
    reference = zeroed_reference(net, masks)
    x = inputs(16)
    got, h1 = bn_outputs(pruned, "C4")
    want, h2 = bn_outputs(reference, "C4")
    pruned(x), reference(x)
    h1.remove(), h2.remove()
    # C3 and C4 run at 8x8; C4 has no dead features, so its channels line up one to one.
    assert report.folded == int(masks["C3"].sum()) > 0
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    assert torch.allclose(got["out"][inner], want["out"][inner], atol=1e-5)
    assert (got["out"] - want["out"]).abs().max() > 1e-3  # the border approximation is real


@torch.no_grad()
def test_positive_beta_in_last_layer_folds_exactly_into_fc(net_and_size):
    net, size = net_and_size
    last = conv_bn_layers(net)[-1][0]
    kill_random(net, sign=+1.0, layers={last}, fraction=0.5)
    masks = dead_masks(net)
    pruned, report = prune_inactive(net, input_shape=(1, 3, size, size))
    x = inputs(size)
    assert report.folded > 0
    assert torch.allclose(pruned(x), zeroed_reference(net, masks)(x), atol=1e-5)


@torch.no_grad()
def test_activation_criterion_matches_zero_inactive():
    net = tiny_basicnet()
    bns = dict((name, bn) for name, _, bn in conv_bn_layers(net))
    bns["C5"].bias[[0, 2]] = -1e3  # these never fire, whatever gamma is
    bns["C7"].bias[[1]] = -1e3
    loader = [(inputs(16, seed=s), torch.zeros(8, dtype=torch.long)) for s in range(3)]
    masks = dead_masks(net, "activation", loader=loader)
    assert int(masks["C5"].sum()) == 2 and int(masks["C7"].sum()) == 1
    pruned, report = prune_inactive(net, "activation", loader=loader)
    x = inputs(16, seed=9)
    assert torch.allclose(pruned(x), zero_inactive(net, masks)(x), atol=1e-5)
    assert report.input_shape == (1, 3, 16, 16)


@pytest.mark.parametrize("borders", ["fold", "carry"])
@torch.no_grad()
def test_fully_dead_layer_is_reported_and_kept_equivalent(borders):
    net = tiny_basicnet()
    bn = dict((name, bn) for name, _, bn in conv_bn_layers(net))["C4"]
    bn.weight.fill_(0.0)
    bn.bias.copy_(torch.linspace(-0.5, 0.5, bn.bias.numel()))  # some constants zero, some positive
    masks = dead_masks(net)
    pruned, report = prune_inactive(net, borders=borders, input_shape=(1, 3, 16, 16))
    assert report.fully_dead == ["C4"]
    layers = report.layers.set_index("layer")
    assert layers.loc["C4", "features_after"] == 1
    x = inputs(16)
    out = pruned(x)
    assert torch.isfinite(out).all()
    # After C4 the network no longer depends on the input: every image gets the same logits.
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-5)
    if borders == "carry":
        assert torch.allclose(out, zeroed_reference(net, masks)(x), atol=1e-4)


def independent_costs(model, size):
    """Per layer (C1.., head): params by summing parameter sizes; MACs from hooked output shapes."""
    convs = {conv: name for name, conv, _ in conv_bn_layers(model)}
    macs = {name: 0 for name in convs.values()} | {"head": 0}

    def conv_hook(module, _inputs, output):
        kh, kw = module.kernel_size
        macs[convs[module]] += module.out_channels * module.in_channels * kh * kw * output.shape[2] * output.shape[3]

    def linear_hook(module, _inputs, _output):
        macs["head"] += module.in_features * module.out_features

    handles = [conv.register_forward_hook(conv_hook) for conv in convs]
    handles += [m.register_forward_hook(linear_hook) for m in model.classifier if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for handle in handles:
        handle.remove()
    params = {name: conv.weight.numel() + bn.weight.numel() + bn.bias.numel()
              for name, conv, bn in conv_bn_layers(model)}
    params["head"] = sum(p.numel() for p in model.classifier.parameters())
    return params, macs


def test_report_counts_match_an_independent_count(net_and_size):
    net, size = net_and_size
    kill_random(net, sign=-1.0, seed=5)
    pruned, report = prune_inactive(net, input_shape=(1, 3, size, size))
    layers = report.layers.set_index("layer")
    for model, when in ((net, "before"), (pruned, "after")):
        params, macs = independent_costs(model, size)
        for name in params:
            assert layers.loc[name, f"params_{when}"] == params[name], (name, when)
            assert layers.loc[name, f"macs_{when}"] == macs[name], (name, when)
        assert layers.loc["total", f"params_{when}"] == sum(params.values())
        assert layers.loc["total", f"macs_{when}"] == sum(macs.values())
    features = {name: conv.out_channels for name, conv, _ in conv_bn_layers(pruned)}
    assert all(layers.loc[name, "features_after"] == count for name, count in features.items())
    assert report.totals()["macs_kept_pct"] < 100


@torch.no_grad()
def test_report_gives_test_errors_and_border_gap():
    net = tiny_basicnet()
    kill_random(net, sign=-1.0)
    loader = [(inputs(16, seed=s), torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(s)))
              for s in range(3)]
    _, report = prune_inactive(net, test_loader=loader)
    assert report.test_err_after == report.test_err_reference
    assert report.agreement == 100.0 and report.max_logit_change < 1e-4
    assert 0 <= report.test_err_before <= 100


@torch.no_grad()
def test_fold_bn_keeps_the_eval_function(net_and_size):
    net, size = net_and_size
    kill_random(net, sign=-1.0)
    pruned, _ = prune_inactive(net, input_shape=(1, 3, size, size))
    for model in (net, pruned):
        folded = fold_bn(model)
        assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in folded.modules())
        x = inputs(size)
        assert torch.allclose(folded(x), model.eval()(x), atol=1e-4)


def test_unsupported_model_and_bad_arguments_are_named():
    with pytest.raises(ValueError, match="cannot be pruned"):
        prune_features(nn.Sequential(nn.Conv2d(3, 4, 3)), {})
    net = BasicNet(width=0.0625, first_width=8, image_size=16)
    with pytest.raises(ValueError, match="criterion='bogus'"):
        prune_inactive(net, criterion="bogus")
    with pytest.raises(ValueError, match="loader=None"):
        prune_inactive(net, criterion="activation")
    with pytest.raises(ValueError, match="borders='edge'"):
        prune_features(net, {}, borders="edge")


def test_layer_costs_of_basicnet_at_full_width_match_the_paper():
    costs = layer_costs(BasicNet(), (1, 3, 32, 32)).set_index("layer")
    conv_weights = sum(costs.loc[f"C{i}", "params"] - 2 * costs.loc[f"C{i}", "features"] for i in range(1, 8))
    assert conv_weights == 4_649_664


def test_prune_or_load_trains_prunes_fine_tunes_and_then_loads(tiny_config, tmp_path):
    config = tiny_config.replace(l2=1e-2)
    record = prune_or_load(config, "implicit", fine_tune_steps=3, execution=Execution(store=tmp_path, device="cpu",
                                                                                      progress=False))
    final = record["final"]
    assert 0 < final["features_kept_pct"] <= 100 and 0 <= final["test_err"] <= 100
    assert [h["step"] for h in record["history"]][-1] == 3
    assert RunStore(tmp_path).load(record["config_hash"]) is not None  # the base run is stored too
    again = prune_or_load(config, "implicit", fine_tune_steps=3, execution=Execution(store=tmp_path, device="cpu",
                                                                                     progress=False))
    assert again["provenance"]["date"] == record["provenance"]["date"] and again["final"] == record["final"]


def test_fine_tune_changes_weights_and_rejects_negative_steps(tiny_config):
    torch.manual_seed(0)
    net = BasicNet(width=0.0625, first_width=8, image_size=16)
    before = [p.detach().clone() for p in net.parameters()]
    history = fine_tune(net, tiny_config, 4, device="cpu")
    assert len(history) == 4 and all(h["train_loss"] > 0 for h in history)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    with pytest.raises(ValueError, match="steps=-1"):
        fine_tune(net, tiny_config, -1)
