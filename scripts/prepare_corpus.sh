#!/usr/bin/env bash
# Writes the default English corpus, data/kjv.txt: the whole King James Bible
# (about 4.3 MB of plain text), offline, from Debian's bible-kjv package.
#
#   scripts/prepare_corpus.sh [OUTPUT]     (default: <repo>/data/kjv.txt)
#
# The text is `bible -l79 Gen1:1-Rev22:21`: pretty-printed, each chapter under
# a "Book N" heading, each verse indented and numbered, lines wrapped at 79
# columns (the package's own default layout). Idempotent: an existing file of
# plausible size is kept. Installs bible-kjv (apt-get) when it is missing and
# we are root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/data/kjv.txt}"
MIN_BYTES=4000000   # the full text is 4,298,239 bytes

size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

if [ -f "$OUT" ] && [ "$(size_of "$OUT")" -ge "$MIN_BYTES" ]; then
  echo "prepare_corpus: $OUT already there ($(size_of "$OUT") bytes)"
  exit 0
fi

if ! command -v bible >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "prepare_corpus: installing bible-kjv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bible-kjv >/dev/null
  else
    echo "prepare_corpus: the 'bible' command is missing: install the bible-kjv package (as root: apt-get install bible-kjv)" >&2
    exit 1
  fi
fi

mkdir -p "$(dirname "$OUT")"
TMP="$(mktemp "$OUT.tmp.XXXXXX")"
trap 'rm -f "$TMP"' EXIT
# -l79 fixes the wrap width (otherwise it follows $COLUMNS); stdin closed so it never waits for input
bible -l79 Gen1:1-Rev22:21 </dev/null >"$TMP"
SIZE="$(size_of "$TMP")"
if [ "$SIZE" -lt "$MIN_BYTES" ]; then
  echo "prepare_corpus: bible printed only $SIZE bytes (expected about 4.3 MB); leaving $OUT alone" >&2
  exit 1
fi
if ! tail -n 3 "$TMP" | grep -q "The grace of our Lord Jesus Christ be with you all. Amen."; then
  echo "prepare_corpus: output does not end with Revelation 22:21; leaving $OUT alone" >&2
  exit 1
fi
chmod 0644 "$TMP"
mv "$TMP" "$OUT"
trap - EXIT
echo "prepare_corpus: wrote $OUT ($SIZE bytes)"
