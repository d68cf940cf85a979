#!/usr/bin/env bash
# Paper A's Table II and the horizon study on the recorded city days, with the project's own commands.
#   ./scripts/predictor_study.sh                      horizons 1 10 30 ticks, seeds 1 2 3
#   HORIZONS="1" SEEDS="1 2" ./scripts/predictor_study.sh
# Needs the city's days 1-9 (./scripts/record_days.sh city). Days 1-6 train, 7 validates, 8 and 9 are held out.
# Trains every network of Table II per horizon and seed into runs/predictor/ (git-ignored; a finished one is
# kept), then evaluates each horizon on days 8-9 into results/predictor/city-hH/. The served predictor,
# models/city-predictor, is the LSTM-based Transformer of seed 1 at the served horizon (SERVED, default 1).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv
cd "$ROOT"
horizons=(${HORIZONS:-1 10 30})
seeds=(${SEEDS:-1 2 3})
served="${SERVED:-1}"
networks=(lstm-transformer lstm gru cnn-lstm cnn-gru)
train_days="$(printf 'data/recordings/city-s%d.npz,' 1 2 3 4 5 6 7)"
test_days="data/recordings/city-s8.npz,data/recordings/city-s9.npz"
for day in 1 2 3 4 5 6 7 8 9; do
    [ -f "data/recordings/city-s$day.npz" ] || { echo "error: no data/recordings/city-s$day.npz: run ./scripts/record_days.sh city" >&2; exit 2; }
done
for h in "${horizons[@]}"; do
    models=()
    for net in "${networks[@]}"; do
        for seed in "${seeds[@]}"; do
            out="runs/predictor/h$h/$net-s$seed"
            if [ "$h" = "$served" ] && [ "$seed" = 1 ] && [ "$net" = lstm-transformer ]; then
                out="models/city-predictor"
            fi
            models+=("$out")
            if [ -f "$out/manifest.json" ]; then
                echo "==> $out exists"
                continue
            fi
            echo "==> training $out"
            "$VENV/bin/twin-service" predictor train --recordings "${train_days%,}" --network "$net" \
                --horizon "$h" --seed "$seed" --out "$out"
        done
    done
    "$VENV/bin/twin-service" predictor evaluate --record --models "$(IFS=,; echo "${models[*]}")" \
        --recordings "$test_days" --out "results/predictor/city-h$h"
done
