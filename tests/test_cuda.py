"""The CUDA paths, which no CPU test reaches: the plain and fused trainers, their speed options
(bf16 autocast, channels_last, torch.compile), cuDNN's grouped convolutions and the pruning latency
on a GPU. Skipped without CUDA; `make gpu-check` runs them first (`pytest -m cuda`)."""
import copy

import pytest
import torch

from sparsity_lib import BasicNet, RunStore, config_hash, conv_bn_layers, train
from sparsity_lib.pruning.costs import fold_bn, latency
from sparsity_lib.pruning.surgery import prune_features
from sparsity_lib.runs.build import build_model
from sparsity_lib.runs.execution import Execution
from sparsity_lib.runs.fused.net import FusedNet, fused_inputs
from sparsity_lib.runs.fused.trainer import run_or_load_group

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_plain_run_on_cuda_tracks_the_cpu_run(tiny_config):
    """Same config on both devices: the record is whole, names the GPU, and the first epoch's loss agrees
    (cuDNN may use TF32 for float32 convolutions, so only to ~1%)."""
    gpu = train(tiny_config, device="cuda", progress=False)
    cpu = train(tiny_config, device="cpu", progress=False)
    assert gpu["provenance"]["device"].startswith("cuda") and gpu["provenance"]["device_name"]
    assert gpu["provenance"]["channels_last"] is False and gpu["provenance"]["compiled"] is False
    assert len(gpu["history"]) == len(cpu["history"]) == 3
    assert gpu["history"][0]["train_loss"] == pytest.approx(cpu["history"][0]["train_loss"], rel=2e-2)
    assert 0 <= gpu["final"]["test_err"] <= 100


def test_grouped_convolutions_on_cuda_are_n_separate_forwards():
    """cuDNN's grouped convolution (groups = N) computes each model's forward exactly, in float64."""
    models = [BasicNet(num_classes=10, width=0.0625, first_width=8, image_size=16).double().cuda().train()
              for _ in range(3)]
    for index, model in enumerate(models):
        torch.manual_seed(index)
        for param in model.parameters():
            param.data.normal_(0, 0.1)
    net = FusedNet([copy.deepcopy(m) for m in models]).cuda()
    x = torch.randn(8, 3, 16, 16, dtype=torch.float64, device="cuda")
    logits = net(fused_inputs(x, 3))
    for index, model in enumerate(models):
        torch.testing.assert_close(logits[index], model(x), rtol=1e-9, atol=1e-12)


def test_fused_group_on_cuda_with_amp_and_channels_last(tmp_path, tiny_config):
    """(torch.compile on CUDA is exercised by gpu_check's train-compile step, where its time is budgeted.)"""
    configs = [tiny_config.replace(l2=l2, epochs=2, lr_drops=(1.0,)) for l2 in (1e-4, 1e-3)]
    records = run_or_load_group(configs, execution=Execution(store=tmp_path, device="cuda", progress=False,
                                                             fused="on", speed=('amp', 'channels_last')))
    for record in records:
        provenance = record["provenance"]
        assert provenance["device"].startswith("cuda") and provenance["fused_models"] == 2
        assert (provenance["precision"], provenance["channels_last"], provenance["compiled"]) == (
            "bf16 autocast", True, False)
        assert record["history"][-1]["train_loss"] == record["history"][-1]["train_loss"]  # not NaN
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(config_hash(c) for c in configs)
    assert RunStore(tmp_path).load(config_hash(configs[0]))["final"] == records[0]["final"]


def test_pruned_network_times_on_cuda(tiny_config):
    """Half the features of every layer removed, both networks BN-folded and timed on the GPU."""
    model = build_model(tiny_config, 10, 16).eval()
    masks = {name: torch.arange(conv.out_channels) % 2 == 0 for name, conv, _ in conv_bn_layers(model)}
    pruned, _ = prune_features(model, masks)
    for network in (fold_bn(model), fold_bn(pruned)):
        timing = latency(network, (4, 3, 16, 16), device="cuda", warmup=2, min_runs=3, min_run_time=0.01)
        assert timing["median_s"] > 0 and timing["images_per_s"] > 0
