#!/usr/bin/env bash
# Fill results/ with the runs the chapters need at the `cpu` profile on synthetic data, using two
# single-threaded workers (44% more throughput than one 2-thread process on a 2-core machine).
# `make book` would train the same runs one by one; this only does it faster. Logs: results/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p results/logs
run_queue() {
  local name=$1; shift
  while read -r flags; do
    [ -z "$flags" ] && continue
    echo "== $flags" >>"results/logs/$name.log"
    OMP_NUM_THREADS=1 $PY -m sparsity_lib train --profile cpu --dataset synthetic --seed 0 $flags \
      >>"results/logs/$name.log" 2>&1 || echo "FAILED: $flags" >>"results/logs/$name.log"
  done
}
run_queue a <<'Q' &
--optimizer adam --l2 1e-3
--optimizer sgd --l2 1e-3
--optimizer adam --l2 0
--optimizer adam --l2 0 --wd 1e-3
--optimizer adam --l2 1e-3 --clutter 1.0
--optimizer adam --l2 1e-3 --batch-size 160
--optimizer amsgrad --l2 1e-3
--optimizer rmsprop --l2 1e-3
--optimizer adam --l2 1e-3 --gamma-lr-scale 0.1
--optimizer adagrad --l2 1e-2
--optimizer sgd --l2 0 --wd 1e-3
Q
run_queue b <<'Q' &
--optimizer adam --l2 1e-4
--optimizer sgd --l2 1e-4
--optimizer adam --l2 0 --wd 1e-4
--optimizer sgd --l2 2e-3
--optimizer adam --l2 1e-3 --clutter 0.5
--optimizer adam --l2 1e-3 --batch-size 20
--optimizer adam --l2 1e-3 --first-width 64 --width 0.5
--optimizer adam --l2 1e-3 --first-width 32 --width 0.25
--optimizer adamax --l2 1e-3
--optimizer adam --l2 1e-3 --activation leaky_relu --negative-slope 0.01
--optimizer adam --l2 1e-3 --bn-bias-init 1.0
--optimizer adam --l2 1e-3 --beta-lr-scale 0.1
--optimizer adadelta --l2 1e-3
Q
wait
