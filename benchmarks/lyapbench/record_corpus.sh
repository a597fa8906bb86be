#!/usr/bin/env bash
# Record the cross-task corpus: one table per task, one process, one task after the other.
# Every table resumes where it stopped, so running this again continues the corpus.
#
#   nohup nice -n 19 bash benchmarks/lyapbench/record_corpus.sh > benchmarks/data/corpus/record.log 2>&1 &
#
# Each table: a random design of N_CONFIGS configurations (cell, hidden size 8-128, init scale
# 0.25-8, learning rate 3e-4 to 3e-2), spectra at epochs 0-3 with at most 64 exponents. A first
# pass records the first FIRST_PASS configurations of every task, so that an early stop still
# leaves every task in the corpus; the second pass completes the tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
N_CONFIGS=${N_CONFIGS:-200}
FIRST_PASS=${FIRST_PASS:-50}
TASKS=${TASKS:-"copy_long mackey_glass xor adding_long charlm psdigits"}
for stop in "$FIRST_PASS" "$N_CONFIGS"; do
    for task in $TASKS; do
        echo "== $task up to $stop $(date -u +%FT%TZ)"
        python -m benchmarks.lyapbench.record --task "$task" --design random --n-configs "$N_CONFIGS" \
            --spectrum-epochs 0 1 2 3 --max-k 64 --stop "$stop" \
            --out "benchmarks/data/corpus/$task.jsonl.gz"
    done
done
echo "== done $(date -u +%FT%TZ)"
