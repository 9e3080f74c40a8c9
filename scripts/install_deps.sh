#!/usr/bin/env bash
# Installs what graft needs to build, test and train, from Debian's packages only.
# Run as root on Debian 12. `--bench` also installs PyTorch (python3-torch) for the benchmarks.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-program-options-dev   # Boost.DLL (header-only) and Program_options
  libtomlplusplus-dev doctest-dev libfmt-dev nlohmann-json3-dev
  libopenblas-dev libdlpack-dev zlib1g-dev
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist fortunes   # fortunes: the text corpus of configs/char_gpt.toml
  clang libclang-rt-dev llvm  # the sanitizer builds and libFuzzer (scripts/sanitize.sh)
  clang-format                # scripts/check_style.sh
)
if [[ "${1:-}" == "--bench" ]]; then packages+=(python3-torch python3-numpy); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
