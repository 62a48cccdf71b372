#!/usr/bin/env bash
# Regenerate the whole study: set up the environment if needed, execute notebooks 01-06
# with papermill under a profile, then build the report.
#
#   ./run_all.sh                      # default profile: the canonical run (figures/, report/)
#   ./run_all.sh --profile smoke      # whole pipeline in a few minutes (outputs in build/smoke/)
#   ./run_all.sh --only 02            # one notebook;  --from 03: from a notebook on
#   ./run_all.sh --set vae.epochs=3   # override a profile field (repeatable)
#   ./run_all.sh --rebuild            # rebuild the caches (corpus, examples, evaluation sets)
#   ./run_all.sh --setup-only         # only create/refresh the environment and the kernel
#
# Uses an active conda environment when one is active (see environment.yml), otherwise a
# local virtual environment in .venv/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

setup_only=0
args=()
for a in "$@"; do
  if [[ "$a" == "--setup-only" ]]; then setup_only=1; else args+=("$a"); fi
done

find_python() {
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "error: Python 3.11 is required (python3.11 not found on PATH)" >&2
  return 1
}

if [[ -n "${CONDA_PREFIX:-}" && -x "${CONDA_PREFIX}/bin/python" ]] &&
   "${CONDA_PREFIX}/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  PY="${CONDA_PREFIX}/bin/python"
  ENV_DIR="${CONDA_PREFIX}"
else
  ENV_DIR=".venv"
  if [[ ! -x "$ENV_DIR/bin/python" ]]; then
    echo "setup: creating virtual environment in $ENV_DIR"
    "$(find_python)" -m venv "$ENV_DIR"
  fi
  PY="$ENV_DIR/bin/python"
fi

# Install only when pyproject.toml changed since the last install (stamp holds its hash).
stamp="$ENV_DIR/.dafxlib-installed"
want=$(sha1sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] || ! "$PY" -c 'import dafxlib' 2>/dev/null; then
  echo "setup: installing dafxlib and its pinned dependencies into $ENV_DIR"
  # torch first and pinned: pip then takes the local CPU wheel instead of a CUDA build.
  "$PY" -m pip install --quiet "torch==2.13.0"
  "$PY" -m pip install --quiet -e ".[test]"
  echo "$want" > "$stamp"
fi
if [[ ! -d "$ENV_DIR/share/jupyter/kernels/dafx" ]]; then
  echo "setup: registering the Jupyter kernel 'dafx'"
  "$PY" -m ipykernel install --sys-prefix --name dafx --display-name "Python (dafx)" >/dev/null
fi
export PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"
# OpenMP threads that spin while waiting make torch 15-30x slower when the cores are
# shared (measured here with 2 cores); passive waiting costs nothing on an idle machine.
export MPLBACKEND="${MPLBACKEND:-Agg}" PYTHONHASHSEED=0 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

# The study's mda effects (Debian's mda-lv2): used where already installed; otherwise installed
# with apt-get as root, or, without root, fetched with `apt-get download` and unpacked into
# $ENV_DIR/lib/lv2 (dafxlib.effects.install). A failed attempt is remembered in a stamp and
# retried by --setup-only; the outcome is the first line a run prints.
mda_stamp="$ENV_DIR/.dafxlib-mda"
if ! mda_line=$("$PY" -m dafxlib.effects.install --env "$ENV_DIR" --method installed); then
  if (( setup_only )) || [[ ! -f "$mda_stamp" ]]; then
    echo "setup: getting Debian's mda-lv2 plugins (the study's effects)"
    mda_line=$("$PY" -m dafxlib.effects.install --env "$ENV_DIR" --method auto) || true
    echo "$mda_line" > "$mda_stamp"
  else
    mda_line="$(cat "$mda_stamp") [remembered; ./run_all.sh --setup-only tries again]"
  fi
fi
echo "$mda_line"

if (( setup_only )); then
  echo "setup: ready ($PY)"
  exit 0
fi

# The paper profile is sized for a GPU: say so up front when torch sees none.
profile=default
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --profile) profile="${args[$((i + 1))]:-}" ;;
    --profile=*) profile="${args[$i]#--profile=}" ;;
  esac
done
if [[ "$profile" == paper ]]; then
  "$PY" - <<'PYEOF'
import torch
if torch.cuda.is_available():
    print(f"run_all: GPU {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible)")
else:
    print(f"run_all: NO GPU FOUND (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no, CPU only'}): "
          "the paper profile will train and search on the CPU, which at its sizes takes days; "
          "README, section 'GPU and several processes', gives the command that installs CUDA torch")
PYEOF
fi
exec "$PY" -m dafxlib.run_notebooks ${args[@]+"${args[@]}"}
