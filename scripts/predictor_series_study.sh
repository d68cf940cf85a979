#!/usr/bin/env bash
# Table II on any T x M series file, with the project's own commands (chronological 70/10/20 split).
#   ./scripts/predictor_series_study.sh FILE NAME [extra 'predictor train' options...]
#   e.g. ./scripts/predictor_series_study.sh data/series/akl-ped-hourly.csv akl-ped --scaling per-series
# Trains every network of Table II for seeds $SEEDS (default 1 2 3) into runs/predictor/NAME/ (git-ignored; a
# finished one is kept) and evaluates them, with persistence and the window mean, into results/predictor/NAME/.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv
cd "$ROOT"
file="${1:?usage: $0 FILE NAME [train options]}"
name="${2:?usage: $0 FILE NAME [train options]}"
shift 2
seeds=(${SEEDS:-1 2 3})
models=()
for net in lstm-transformer lstm gru cnn-lstm cnn-gru; do
    for seed in "${seeds[@]}"; do
        out="runs/predictor/$name/$net-s$seed"
        models+=("$out")
        if [ -f "$out/manifest.json" ]; then
            echo "==> $out exists"
            continue
        fi
        echo "==> training $out"
        "$VENV/bin/twin-service" predictor train --series "$file" --network "$net" --seed "$seed" --out "$out" "$@"
    done
done
"$VENV/bin/twin-service" predictor evaluate --record --models "$(IFS=,; echo "${models[*]}")" --out "results/predictor/$name"
