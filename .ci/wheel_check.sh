#!/usr/bin/env bash
# The wheel is a tool: build it, install it into a fresh folder outside the checkout (no
# editable install, no dependencies reinstalled: torch and the rest come from the running
# Python), and from an empty folder run the command as a new user would. Reports the
# wheel's size. Exits non-zero on any failure.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== build the wheel"
isolation=--no-build-isolation  # the running Python's setuptools, when it has one (no download)
"$python" -c 'import setuptools' 2>/dev/null || isolation=
"$python" -m pip wheel --quiet --no-deps $isolation --wheel-dir "$work/dist" "$repo"
wheel="$(ls "$work"/dist/dendrisim-*.whl)"
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KiB ($(stat -c %s "$wheel") bytes)"
"$python" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
models = [n for n in names if n.startswith("dendrisim/models/") and n.endswith(".yaml")]
assert "dendrisim/models/dll_mlp_digits.yaml" in models, "the wheel carries no bundled models"
assert "dendrisim/__main__.py" in names and "dendrisim/commands.py" in names
assert "dendrisim/rules_catalogue.json" in names, "the wheel carries no rule catalogue (dendrisim rules would import torch)"
assert any(n.endswith("entry_points.txt") for n in names), "no console script"
print(f"wheel holds {len(names)} files, {len(models)} bundled models")
PY

echo "== install it outside the checkout"
"$python" -m pip install --quiet --no-deps --no-index --target "$work/site" "$wheel"
export PYTHONPATH="$work/site"
export PATH="$work/site/bin:$PATH"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
empty="$work/empty"
mkdir "$empty"
cd "$empty"

where="$("$python" -c 'import dendrisim; print(dendrisim.__file__)')"
case "$where" in
  "$work/site/"*) echo "dendrisim imported from $where" ;;
  *) echo "error: dendrisim imported from $where, not from the installed wheel" >&2; exit 1 ;;
esac

echo "== dendrisim --version"
dendrisim --version
echo "== dendrisim models"
dendrisim models | grep -q '^dll_mlp_digits  ' || { echo "error: dll_mlp_digits is not listed" >&2; exit 1; }
dendrisim models | grep -c '^dll_' | sed 's/^/bundled models listed: /'
echo "== dendrisim rules"
dendrisim rules | grep -E '^[a-z_]+  \(' | cut -d' ' -f1 | tr '\n' ' '; echo
"$python" - <<'PY'
import contextlib, io, sys
from dendrisim.commands import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["models"])
    main(["rules"])
assert "torch" not in sys.modules, "dendrisim models/rules imported torch in the installed package"
print("models and rules import no torch")
PY
echo "== dendrisim run --dry-run"
dendrisim run --dry-run | tail -n 1
echo "== python -m dendrisim run dll_mlp_digits --dry-run"
"$python" -m dendrisim run dll_mlp_digits --dry-run | tail -n 1
runs=$(ls -d recordings/dll_mlp_digits-* 2>/dev/null | wc -l)
if [ "$runs" -ne 2 ] || [ ! -f "$(ls -d recordings/dll_mlp_digits-* | head -n 1)/recording.h5" ]; then
  echo "error: expected two runs with a recording under $empty/recordings, found $runs" >&2
  exit 1
fi
echo "ok: ./recordings holds $runs runs"
