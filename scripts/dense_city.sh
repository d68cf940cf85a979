#!/usr/bin/env bash
# The dense real city of the README ("Importing a real city"): the Hamburg test field (../shared/scenarios/
# tavf-hamburg, read where it is) at 1.5 times its demand with SUMO's --scale, about 2,800 vehicles at once on its
# few square kilometres. The junction-only rule refused it ("only 282 junctions carry traffic; cannot place 323
# RSUs"); the import now provisions it with no options. Then one day is recorded per seed and the default and the
# trained policies are evaluated over its 20 minutes (4 episodes of 285 s after a 60 s warm-up).
#   ./scripts/dense_city.sh [SEEDS]      default seeds: 1 (results/provisioning/hamburg-x1.5), 2 (...-s2)
#   ./scripts/dense_city.sh validate     day 3, the validation day of the per-server actor's candidate count:
#                                        dm-mappo-city weighing 8, 16, 32 and 60 candidates (copies of it under
#                                        data/dense/models whose manifests fix the count) against least-loaded
#                                        (results/provisioning/hamburg-x1.5-validation)
# Everything generated goes to data/dense/ (git-ignored); the tables and plots to results/provisioning/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${TWIN_SHARED_DIR:-$ROOT/../shared}"
HAMBURG="$(cd "$SHARED/scenarios/tavf-hamburg" && pwd)"
TWIN="$ROOT/.venv/bin/twin-service"
SEEDS="${1:-1,2}"
cd "$ROOT"
mkdir -p data/dense
cat > data/dense/hamburg-x1.5.sumocfg <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<configuration>
    <input>
        <net-file value="$HAMBURG/network.net.xml.gz"/>
        <additional-files value="$HAMBURG/busStops.add.xml"/>
        <route-files value="$HAMBURG/bus_route.rou.xml,$HAMBURG/vType.xml,$HAMBURG/PKW_automatic.rou.xml.gz,$HAMBURG/LKW_automatic.rou.xml"/>
    </input>
    <time>
        <begin value="0"/>
        <end value="1200"/>
    </time>
    <report>
        <no-step-log value="true"/>
        <no-warnings value="true"/>
    </report>
    <seed value="121294"/>
    <processing><scale value="1.5"/></processing>
</configuration>
EOF
[ -f data/dense/hh15/params.toml ] || "$TWIN" scenario import data/dense/hamburg-x1.5.sumocfg --out data/dense/hh15
if [ "$SEEDS" = validate ]; then
    [ -f data/dense/hh15-s3.npz ] || "$TWIN" record --scenario data/dense/hh15 --seed 3 --out data/dense/hh15-s3.npz
    rm -rf data/dense/models && mkdir -p data/dense/models
    for k in 8 16 32 60; do
        cp -r models/dm-mappo-city "data/dense/models/x-dm-c$k"
        "$ROOT/.venv/bin/python" - "data/dense/models/x-dm-c$k/manifest.json" "$k" <<'PY'
import json, sys
from twin_service.policies.per_server import layout_sites_in_reach
from twin_service.scenario.folder import Scenario
path, k = sys.argv[1], int(sys.argv[2])
m = json.load(open(path))
m["name"] = f"x-dm-c{k}"
m["architecture"]["options"]["candidates"] = k
# Recorded as trained on this layout's density, so that it weighs exactly k here (the rule would give 60).
m["architecture"]["options"]["reach_sites"] = layout_sites_in_reach(Scenario.load("data/dense/hh15").layout)
json.dump(m, open(path, "w"), indent=2)
PY
    done
    out=$(mktemp -d)
    TWIN_MODELS_DIR=data/dense/models OMP_NUM_THREADS=1 "$TWIN" evaluate --recordings data/dense/hh15-s3.npz \
        --migration-policy least-loaded,x-dm-c8,x-dm-c16,x-dm-c32,x-dm-c60 --offload-policy nearest-least-loaded \
        --warmup-s 60 --episode-s 285 --out "$out"
    mkdir -p results/provisioning/hamburg-x1.5-validation
    cp "$out"/{summary.md,summary.csv,episodes.csv,paper_a_kpis.png} results/provisioning/hamburg-x1.5-validation/
    exit 0
fi
for seed in ${SEEDS//,/ }; do
    suffix=$([ "$seed" = 1 ] && echo "" || echo "-s$seed")
    [ -f "data/dense/hh15-s$seed.npz" ] || "$TWIN" record --scenario data/dense/hh15 --seed "$seed" \
        --out "data/dense/hh15-s$seed.npz"
    OMP_NUM_THREADS=1 "$TWIN" evaluate --recordings "data/dense/hh15-s$seed.npz" \
        --migration-policy least-loaded,dm-mappo-city --offload-policy nearest-least-loaded,af-marl-city \
        --warmup-s 60 --episode-s 285 --out "results/provisioning/hamburg-x1.5$suffix"
done
