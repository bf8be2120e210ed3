#!/usr/bin/env bash
# The build steps of the fedssl image, as a script the Dockerfile runs and the tests run
# directly (tests/test_docker_image.py), so that what the image does is tested without Docker.
#
#   deploy/docker/build-env.sh [--deps-only] [VENV [APP]]
#
#   VENV   the virtual environment to create or reuse (argument, or $VENV; default /opt/venv)
#   APP    the fedssl source tree: pyproject.toml, README.md, fedssl/, deploy/docker/
#          (argument, or $APP; default: the checkout this script is in)
#   --deps-only   stop after the pinned dependencies (the Dockerfile's cached, heavy layer)
#
# Steps (each is idempotent, so running the script twice is safe):
#   1. create VENV with python3.11 unless VENV/bin/python exists ($PYTHON picks the interpreter)
#   2. install the pip version pinned in the lock (or upgrade pip when the lock pins none)
#   3. pip install -r deploy/docker/requirements.lock   (exact pins; $LOCK overrides the path)
#   4. pip install --no-deps -e APP   (editable: fedssl reads APP/pyproject.toml at run time and
#      `flwr run` needs APP as the app directory, so the source tree stays where it is)
#   5. byte-compile APP/fedssl (the image's user cannot write __pycache__ there)
#   6. smoke check: `fedssl --help`, `fedssl deploy --help`, `pip check`, the versions of
#      torch, torchvision, torchaudio, flwr, lightly and wandb, and load_defaults()
#
# Needs no root: it writes only into VENV (and APP's __pycache__). Network: pip's index.
set -euo pipefail

deps_only=0
if [ "${1:-}" = "--deps-only" ]; then
    deps_only=1
    shift
fi
if [ "$#" -gt 2 ]; then
    echo "usage: $0 [--deps-only] [VENV [APP]]" >&2
    exit 2
fi

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-${VENV:-/opt/venv}}"
APP="${2:-${APP:-$(cd "$script_dir/../.." && pwd)}}"
PYTHON="${PYTHON:-python3.11}"
LOCK="${LOCK:-$APP/deploy/docker/requirements.lock}"

say() { echo "build-env: $*"; }

if [ ! -f "$LOCK" ]; then
    echo "build-env: no lock file at $LOCK" >&2
    exit 2
fi
if [ "$deps_only" -eq 0 ] && [ ! -f "$APP/pyproject.toml" ]; then
    echo "build-env: $APP has no pyproject.toml (APP must be the fedssl source tree)" >&2
    exit 2
fi

# 1. the virtual environment
if [ -x "$VENV/bin/python" ]; then
    say "reusing $VENV"
else
    say "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
pip=("$py" -m pip --disable-pip-version-check)

# 2. pip itself, at the lock's version
pip_pin="$(grep -E '^pip==' "$LOCK" || true)"
say "installing ${pip_pin:-the newest pip}"
"${pip[@]}" install --upgrade "${pip_pin:-pip}"

# 3. the pinned dependencies
say "installing the pinned dependencies of $LOCK"
"${pip[@]}" install -r "$LOCK"
if [ "$deps_only" -eq 1 ]; then
    say "dependencies done (--deps-only)"
    exit 0
fi

# 4. fedssl itself, editable (its dependencies are all in the lock)
say "installing $APP (editable, no dependencies)"
"${pip[@]}" install --no-deps -e "$APP"

# 5. byte-code for the read-only source tree
"$py" -m compileall -q "$APP/fedssl"

# 6. smoke check
say "smoke check"
"$VENV/bin/fedssl" --help >/dev/null
"$VENV/bin/fedssl" deploy --help >/dev/null
"${pip[@]}" check
FEDSSL_APP="$APP" "$py" - <<'PY'
import importlib.metadata as md
import os
from pathlib import Path

import flwr
import lightly
import torch
import torchaudio
import torchvision
import wandb

import fedssl
from fedssl.config import PYPROJECT, RunConfig, load_defaults

for module in (torch, torchvision, torchaudio, flwr, lightly, wandb):
    print(f"build-env: {module.__name__} {md.version(module.__name__)}")
app = Path(os.environ["FEDSSL_APP"]).resolve()
source = Path(fedssl.__file__).resolve()
if not source.is_relative_to(app):
    raise SystemExit(f"build-env: fedssl is imported from {source}, not from {app}")
defaults = load_defaults()
cfg = RunConfig.from_run_config(defaults)
print(f"build-env: fedssl {md.version('fedssl')} from {source.parent}; {len(defaults)} run-config "
      f"defaults in {PYPROJECT} (strategy={cfg.strategy}, model={cfg.model})")
PY
say "done: $VENV"
