#!/usr/bin/env bash
# Installs the Debian packages that kanc builds and tests with (needs root or sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PKGS=(build-essential pkg-config flex bison libopenblas-openmp-dev libcjson-dev libpcre2-dev
      libcriterion-dev libcairo2-dev zlib1g-dev bible-kjv xxd openmpi-bin libopenmpi-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "setup: all build dependencies present"
