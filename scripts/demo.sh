#!/usr/bin/env bash
# The README's main-job command: set everything up, then run the two-node mesh demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/amesh.js demo "$@"
