#!/usr/bin/env bash
# sanitizer_reports.sh DIR: the sanitizer reports make sanitize collected (one file per
# process that found something). Prints each and fails when there is any.
set -uo pipefail
dir=$1
shopt -s nullglob
# a file that holds only ASan's warning about the emulator's fibers (swapcontext) is no report
reports=()
for f in "$dir"/*; do
  grep -qE 'ERROR: |runtime error:' "$f" && reports+=("$f")
done
if [ ${#reports[@]} -eq 0 ]; then
  echo "sanitize: no sanitizer reports"
  exit 0
fi
for f in "${reports[@]}"; do
  echo "==== $f"
  head -60 "$f"
done
echo "sanitize: ${#reports[@]} sanitizer report(s) in $dir"
exit 1
