#!/usr/bin/env bash
# The dense real city of the README ("Importing a real city"): the Hamburg test field (../shared/scenarios/
# tavf-hamburg, read where it is) at 1.5 times its demand with SUMO's --scale, about 2,800 vehicles at once on its
# few square kilometres. The junction-only rule refused it ("only 282 junctions carry traffic; cannot place 323
# RSUs"); the import now provisions it with no options. Then one day is recorded per seed and the default and the
# trained policies are evaluated over its 20 minutes (4 episodes of 285 s after a 60 s warm-up).
#   ./scripts/dense_city.sh [SEEDS]      default seeds: 1 (results/provisioning/hamburg-x1.5), 2 (...-s2)
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
for seed in ${SEEDS//,/ }; do
    suffix=$([ "$seed" = 1 ] && echo "" || echo "-s$seed")
    [ -f "data/dense/hh15-s$seed.npz" ] || "$TWIN" record --scenario data/dense/hh15 --seed "$seed" \
        --out "data/dense/hh15-s$seed.npz"
    OMP_NUM_THREADS=1 "$TWIN" evaluate --recordings "data/dense/hh15-s$seed.npz" \
        --migration-policy least-loaded,dm-mappo-city --offload-policy nearest-least-loaded,af-marl-city \
        --warmup-s 60 --episode-s 285 --out "results/provisioning/hamburg-x1.5$suffix"
done
