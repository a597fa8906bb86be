#!/usr/bin/env bash
# Record the cross-task corpus: one table per task, one task after the other, one process.
# Every table resumes where it stopped, so running this again continues the corpus.
#
#   nohup nice -n 19 bash benchmarks/record_corpus.sh > benchmarks/data/corpus/record.log 2>&1 &
#
# Each table: a random design of N_CONFIGS configurations (cell, hidden size 8-128, init scale
# 0.25-8, learning rate 3e-4 to 3e-2), spectra at epochs 0-3 with at most 64 exponents.
set -euo pipefail
cd "$(dirname "$0")/.."
N_CONFIGS=${N_CONFIGS:-200}
TASKS=${TASKS:-"copy_long mackey_glass xor adding_long charlm psdigits"}
for task in $TASKS; do
    echo "== $task $(date -u +%FT%TZ)"
    python benchmarks/record.py --task "$task" --design random --n-configs "$N_CONFIGS" \
        --spectrum-epochs 0 1 2 3 --max-k 64 --out "benchmarks/data/corpus/$task.jsonl.gz"
done
echo "== done $(date -u +%FT%TZ)"
