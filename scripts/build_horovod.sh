#!/usr/bin/env bash
# Build Horovod 0.28.1 (its last PyPI release) against the torch installed in .venv/, cache the
# wheel, and install it. A second run with the same torch installs the cached wheel in seconds.
#
#   scripts/build_horovod.sh            # uses .venv/ (run scripts/setup.sh nn first)
#   PYTHON=/path/to/python scripts/build_horovod.sh
#
# Why a build script: Horovod 0.28.1 does not compile against torch >= 2.1 as published, because
# its CMake files ask for C++14 while torch's headers need C++17 (and C++20 from about torch 2.10
# on: the headers stop with "C++20 or later compatible compiler is required"). The script raises
# the two `set(CMAKE_CXX_STANDARD 14)` lines: top-level CMakeLists.txt to 17, and
# horovod/torch/CMakeLists.txt to what the installed torch's headers ask for (17 or 20). We build with Gloo (no MPI), PyTorch only, on the CPU (a CUDA toolkit found by
# CMake adds GPU ops; set HOROVOD_GPU_OPERATIONS=NCCL yourself on a GPU build machine).
# Horovod's Spark *estimator* (petastorm, pyarrow<11) is not used: credit_spark only needs
# `horovod.spark.run`, which the core package provides.
#
# The wheel links against torch's C++ ABI, so the cache key is the torch version: a new torch
# rebuilds (about 8 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

HOROVOD_VERSION=0.28.1
PYTHON="${PYTHON:-.venv/bin/python}"
CACHE="${CREDIT_SPARK_WHEEL_CACHE:-$HOME/.cache/credit_spark/wheels}"

"$PYTHON" -c "import torch" 2>/dev/null || {
  echo "[horovod] torch is not installed for $PYTHON: run scripts/setup.sh nn first" >&2; exit 1; }
if "$PYTHON" -c "import horovod.torch, horovod.spark; from horovod.common.util import gloo_built; assert gloo_built()" 2>/dev/null; then
  echo "[horovod] horovod $HOROVOD_VERSION with torch and Gloo is already installed"
  exit 0
fi

torch_version="$("$PYTHON" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
py_tag="$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')"
target="$CACHE/horovod-$HOROVOD_VERSION-torch-$torch_version-$py_tag"
mkdir -p "$target"
wheel="$(ls "$target"/horovod-*.whl 2>/dev/null | head -1 || true)"

if [ -z "$wheel" ]; then
  echo "[horovod] building horovod $HOROVOD_VERSION against torch $torch_version (about 8 minutes on 2 cores)"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$work"
  tar -xzf "$work/horovod-$HOROVOD_VERSION.tar.gz" -C "$work"
  src="$work/horovod-$HOROVOD_VERSION"
  # torch's own headers say which standard they need (C++17 up to about 2.9, C++20 after)
  torch_std=17
  if grep -rqs "C++20 or later" "$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__))')/include/ATen/ATen.h"; then
    torch_std=20
  fi
  for pair in "CMakeLists.txt:17" "horovod/torch/CMakeLists.txt:$torch_std"; do
    file="$src/${pair%%:*}"; std="${pair##*:}"
    grep -q 'set(CMAKE_CXX_STANDARD 14)' "$file" || {
      echo "[horovod] $file has no 'set(CMAKE_CXX_STANDARD 14)' line: the sdist changed, check the patch" >&2; exit 1; }
    sed -i "s/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD $std)/" "$file"
  done
  echo "[horovod] C++17 for Horovod, C++$torch_std for its torch extension"
  # build-time helpers of horovod's setup.py (the build uses the installed torch, no isolation)
  # cmake < 4: CMake 4 removed FindPythonInterp, which Horovod's CMake files use to find Python (PY_EXE)
  "$PYTHON" -m pip install -q "cmake>=3.18,<4" wheel setuptools cloudpickle psutil pyyaml packaging
  HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
  HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" \
    "$PYTHON" -m pip wheel -v --no-deps --no-build-isolation "$src" -w "$work/dist" > "$work/build.log" 2>&1 || {
      cp "$work/build.log" "$CACHE/last-failed-build.log"
      grep -m 20 "error" "$work/build.log" >&2 || true
      echo "[horovod] build failed; full log: $CACHE/last-failed-build.log" >&2; exit 1; }
  cp "$work/dist"/horovod-*.whl "$target/"
  wheel="$(ls "$target"/horovod-*.whl | head -1)"
  echo "[horovod] cached $wheel"
fi

"$PYTHON" -m pip install -q --no-deps --force-reinstall "$wheel"
"$PYTHON" -m pip install -q cloudpickle psutil pyyaml packaging
"$PYTHON" -c "import horovod.torch, horovod.spark; from horovod.common.util import gloo_built; assert gloo_built(), 'horovod was built without Gloo'; print('[horovod] installed', horovod.__version__, 'with Gloo')"
