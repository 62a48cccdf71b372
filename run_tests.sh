#!/usr/bin/env bash
# Run the test suite (unit tests by concern plus a smoke-profile run of every notebook),
# setting up the same environment as run_all.sh first.   ./run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
./run_all.sh --setup-only
if [[ -n "${CONDA_PREFIX:-}" && -x "${CONDA_PREFIX}/bin/python" ]] &&
   "${CONDA_PREFIX}/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  PY="${CONDA_PREFIX}/bin/python"
else
  PY=.venv/bin/python
fi
export PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"
export MPLBACKEND=Agg PYTHONHASHSEED=0 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$PY" -m pytest -q -ra --durations=15 "$@"
