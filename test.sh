#!/usr/bin/env bash
# Set up (once) and run the tests. Arguments go to pytest (e.g. -k resume, -x).
set -euo pipefail
cd "$(dirname "$0")"
source ./setup.sh requirements-dev.txt
"$PY" -m pytest "$@"
