#!/usr/bin/env bash
# The documentation site: Sphinx with warnings as errors and every cross-reference checked
# (-n, nitpicky: a broken anchor is an error), the gallery's examples run during the build
# (sphinx-gallery), into a temporary folder that is removed afterwards. Exits non-zero on any
# warning, and when a built page loads a script or stylesheet from the network (the site,
# MathJax included, works offline). Needs the 'docs' extra (pip install -e '.[docs]'); .ci/run
# calls this after the tests.
#   .ci/docs.sh            build and discard
#   .ci/docs.sh OUTDIR     build into OUTDIR and keep it
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
if [ $# -ge 1 ]; then out=$1; keep=1; else out=$(mktemp -d); keep=0; fi
start=$(date +%s)
python -m sphinx -W -n --keep-going -b html -q docs "$out"
remote=$(grep -rlE '<(script|link)[^>]*(src|href)="(https?:)?//' "$out" --include='*.html' || true)
if [ -n "$remote" ]; then
  echo "error: pages that load scripts or stylesheets from the network (the site must work offline):" >&2
  echo "$remote" | head -n 10 >&2
  exit 1
fi
echo "docs built in $(( $(date +%s) - start )) s: $out/index.html"
if [ "$keep" = 0 ]; then rm -rf "$out"; fi
