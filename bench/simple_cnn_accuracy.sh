#!/usr/bin/env bash
# Trains the SimpleCNN as the seed notebooks do (Adam 1e-4, batch 100, 2000 steps) and checks
# the test-set accuracy bar of 0.87. Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
out=$(build/worker/pstrain-worker --model simple_cnn --steps 2000 --batch 100 --optimizer adam \
      --lr 1e-4 --seed 1 --quiet | tee /dev/stderr)
acc=$(echo "$out" | sed -n 's/^test_accuracy=//p')
python3 -c "import sys; a=float('$acc'); print('simple_cnn test_accuracy=%.4f (bar 0.87): %s' % (a, 'PASS' if a >= 0.87 else 'FAIL')); sys.exit(0 if a >= 0.87 else 1)"
