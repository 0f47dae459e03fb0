#!/usr/bin/env bash
# Installs the system packages hrmbench builds with (Debian/Ubuntu). Safe to re-run: it installs
# only what is missing. Needs root or sudo. (chromium: the report-rendering test; libopenmpi-dev and
# openmpi-bin: data-parallel `hrmbench train` under mpirun, optional at build time.)
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git
      libtbb-dev rapidjson-dev libxxhash-dev libcli11-dev libgtest-dev libpcre2-dev libutf8proc-dev
      clang libclang-rt-dev chromium libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
