#!/usr/bin/env bash
# CI for plugins/ (no GPU, no TensorRT needed): configure and build (Release) into plugins/build, run the host
# tests with ctest (the sampling math, and every thread of the kernel's grid emulated on the CPU), and compile the
# kernel for sm_75, sm_80, sm_86, sm_89, sm_90 plus compute_90 PTX with ptxas -v, keeping its register/spill report
# in plugins/build/ptxas.log. With TensorRT's headers (TensorRT_ROOT, TensorRT_INCLUDE_DIR) it builds the plugin
# libraries too. Reuses plugins/build incrementally.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build"
jobs="$(nproc 2>/dev/null || echo 2)"
mkdir -p "$build"

cmake_args=(-S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release)
# TensorRT as the user has it: TensorRT_ROOT (tar or deb prefix) or TensorRT_INCLUDE_DIR for the headers, and the
# Python that has pip's tensorrt_libs (the repository's .venv, else python3 on PATH) for a wheel's libnvinfer.so.N.
for variable in TensorRT_ROOT TensorRT_INCLUDE_DIR; do
  if [[ -n "${!variable:-}" ]]; then cmake_args+=("-D$variable=${!variable}"); fi
done
python="$here/../.venv/bin/python"
[[ -x "$python" ]] || python="$(command -v python3 || true)"
if [[ -n "$python" ]]; then cmake_args+=("-DPython3_EXECUTABLE=$python"); fi
if command -v nvcc >/dev/null 2>&1; then
  cmake_args+=(-DDFF_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DDFF_PTXAS_VERBOSE=ON
    "-DCMAKE_CUDA_ARCHITECTURES=75-real;80-real;86-real;89-real;90")
else
  echo "plugins/ci.sh: nvcc not found; skipping the CUDA kernel and the plugin, building the host test only"
  cmake_args+=(-DDFF_WITH_CUDA=OFF)
fi

cmake "${cmake_args[@]}" > "$build/configure.log" || { cat "$build/configure.log"; exit 1; }
grep -E '^-- dff:' "$build/configure.log" || true

# The full compiler output (with ptxas -v) goes to build.log; the console gets it without the ptxas report.
build_all() {
  cmake --build "$build" -j "$jobs" > "$build/build.log" 2>&1 || { cat "$build/build.log"; exit 1; }
  grep -vE 'ptxas info|bytes stack frame' "$build/build.log" || true
}
ptxas_lines='ptxas (info|warning|error)|bytes stack frame'
build_all

if command -v nvcc >/dev/null 2>&1; then
  # ptxas reports only when warp_kernel.cu is recompiled; an unchanged object keeps the previous report.
  if grep -q 'ptxas info' "$build/build.log"; then
    grep -E "$ptxas_lines" "$build/build.log" > "$build/ptxas.log"
  elif [[ ! -s "$build/ptxas.log" ]]; then
    find "$build" -name 'warp_kernel.cu.o' -delete
    build_all
    grep -E "$ptxas_lines" "$build/build.log" > "$build/ptxas.log"
  fi
  echo "ptxas per kernel and arch (full report: plugins/build/ptxas.log):"
  demangle=(cat)
  command -v c++filt >/dev/null 2>&1 && demangle=(c++filt)
  "${demangle[@]}" < "$build/ptxas.log" | awk '
    /Compiling entry function/ {
      kernel = $0; sub(/.*warpKernel/, "warpKernel", kernel); sub(/\(.*/, "", kernel)
      arch = $0; sub(/.* for ./, "", arch); sub(/.$/, "", arch)
    }
    /spill stores/ { spills = $5 "/" $9 }
    /Used [0-9]+ registers/ {
      printf "  %-6s %-26s %3s registers, spill stores/loads %s bytes\n", arch, kernel, $5, spills
    }'
  if awk '/spill stores/ && !/ 0 bytes spill stores, 0 bytes spill loads/ { found = 1 } END { exit !found }' \
    "$build/ptxas.log"; then
    echo "plugins/ci.sh: warning: the kernel spills registers on some arch (see above)"
  fi
fi

(cd "$build" && ctest --output-on-failure)

for library in libdff_warp_plugin.so libdff_warp_plugin_static.so; do
  if [[ -f "$build/$library" ]]; then echo "built plugins/build/$library"; fi
done
