#!/usr/bin/env bash
# Installs everything edgernn uses on a fresh Debian machine: the C and Arm cross toolchains,
# QEMU for the Cortex-M4 tests, then edgernn itself (editable) with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
[ -f /usr/lib/arm-none-eabi/newlib/libc.a ] || [ -d /usr/lib/arm-none-eabi/newlib ] || need+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v clang-14 >/dev/null || need+=(clang-14)  # tests build the native C with clang too (armclang users)
command -v chromium >/dev/null || need+=(chromium)  # tests open the HTML validation report headless
if [ ${#need[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
if ! $PY -c "import edgernn, tflite_micro, tf_keras, tensorflow_model_optimization, elftools, rich, numba, threadpoolctl, sklearn, aeon, ray.tune, optuna, matplotlib, hypothesis, xdist" 2>/dev/null; then
  echo "[setup] pip install -e .[test]"
  $PY -m pip install -q --disable-pip-version-check -e ".[test]"
fi
# An edgernn installed (editable) from another checkout would shadow this one: point it here.
here=$(pwd -P)
installed=$(cd / && $PY -c "import edgernn, os; print(os.path.dirname(os.path.dirname(os.path.realpath(edgernn.__file__))))" 2>/dev/null || true)
if [ "$installed" != "$here" ]; then
  echo "[setup] pip install -e . (edgernn was installed from ${installed:-nowhere})"
  $PY -m pip install -q --disable-pip-version-check --no-deps -e .
fi
echo "[setup] ready: $($PY -c 'import edgernn; print("edgernn", edgernn.__version__)')"
