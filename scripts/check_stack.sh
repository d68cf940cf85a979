#!/usr/bin/env bash
# The Docker stack verified for real, on any machine with a Docker engine and Compose: build the image, bring
# the stack up, wait for healthy, check the api, noVNC and the dashboard, restart redis, then api, then bridge
# (each must recover within 30 s with no lost tick), then bring it down. Options: scripts/check_stack.py --help.
#
#   scripts/check_stack.sh                 # build, check, down
#   scripts/check_stack.sh --no-build      # an image twin-service:local built already (e.g. by docker-sandbox)
#   scripts/check_stack.sh --cluster       # docker compose --profile cluster: two cities on a Redis Cluster
#
# The build is CPU-heavy: it runs under nice. Python 3 runs the checks (standard library only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
exec nice -n 10 "$PYTHON" scripts/check_stack.py "$@"
