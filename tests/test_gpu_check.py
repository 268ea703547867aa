"""`make gpu-check DRY_RUN=1`: every step of the GPU check runs, with the same code, at smoke size on the
CPU, writes its outputs and reports success, and BENCHMARKS.md is left alone."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["cuda-tests", "train-fp32", "train-amp-cl", "slice-adam", "slice-sgd", "prune", "train-compile"]


def test_gpu_check_dry_run_runs_every_step(tmp_path):
    benchmarks = ROOT / "BENCHMARKS.md"
    before = hashlib.sha256(benchmarks.read_bytes()).hexdigest()
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out),
                           "--total-s", "300"], cwd=ROOT, capture_output=True, text=True, timeout=330)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["dry_run"] and summary["failed"] == []
    statuses = {step["name"]: step["status"] for step in summary["steps"]}
    assert list(statuses) == STEPS
    import torch
    cuda_status = "ok (" if torch.cuda.is_available() else "skipped ("
    assert statuses["cuda-tests"].startswith(cuda_status)
    assert all(status == "ok" for name, status in statuses.items() if name != "cuda-tests")
    for name in ("train-fp32.md", "train-amp-cl.md", "train-compile.md", "prune.md", "cuda-tests.xml", "report.md"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "## GPU check (dry run)" in report and "| fused N=2 | 2 |" in report
    # the slice trained every Adam and SGD L2 row of Table 1 (7 each) into the temporary store
    assert report.count("| yes |") == 14 and "| no |" not in report
    assert hashlib.sha256(benchmarks.read_bytes()).hexdigest() == before
