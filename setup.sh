#!/usr/bin/env bash
# Sets up everything rnngan needs in ./.venv (idempotent): Python packages incl. PyTorch,
# DVC and the test tools. Usage: bash setup.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch comes from pyproject's range; pip takes the local wheels where they are provided
.venv/bin/python -m pip install --quiet --editable '.[test]'
.venv/bin/python -m pip check
export DVC_NO_ANALYTICS=1
echo "rnngan is set up in .venv: run '. .venv/bin/activate' to use rnngan and dvc"
