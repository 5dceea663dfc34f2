#!/bin/sh
# Reproduce the bad-input table: every case of tests/test_bad_inputs.py, its first error line and exit code.
# Usage: scripts/bad_input_table.sh [out.md]   (default: bad-inputs.md)
set -e
out="${1:-bad-inputs.md}"
OPTKIT_BAD_INPUT_TABLE="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")" \
    .venv/bin/python -m pytest tests/test_bad_inputs.py -q
echo "wrote $out"
