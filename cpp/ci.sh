#!/usr/bin/env bash
# CI for cpp/ (no GPU needed): install the Debian packages it needs when missing (as root), export the demo model
# (segmentation) and a `dff init` detector (detection), then configure, build and ctest libdff twice: Release (cpp/build: library, example app, tests) and under
# AddressSanitizer + UndefinedBehaviorSanitizer (cpp/build/asan: library and the bad-input tests); finally
# `cmake --install` it and build and run a consumer project that does find_package(dff) (cpp/tests/consumer).
# The Python parity test (tests/test_cpp.py) runs in `make test`'s pytest; plain `ctest` in cpp/build runs it too.
# Reuses the build folders incrementally; ccache is used where installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
build="$here/build"
python="${DFF_PYTHON:-$repo/.venv/bin/python}"
jobs=2

packages=(nlohmann-json3-dev libssl-dev libopencv-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ "$(id -u)" == 0 ]]; then
    echo "cpp/ci.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
  else
    echo "cpp/ci.sh: missing Debian packages ${missing[*]}: run 'sudo apt-get install ${missing[*]}'" >&2
    exit 1
  fi
fi
if [[ ! -x "$python" ]]; then
  echo "cpp/ci.sh: no Python environment at $python: run 'make .venv/.installed' (or set DFF_PYTHON)" >&2
  exit 1
fi

openvino_cmake="$("$python" -c 'import openvino, os; print(os.path.join(os.path.dirname(openvino.__file__), "cmake"))')"
tools=()
command -v ninja > /dev/null && tools+=(-G Ninja)
command -v ccache > /dev/null && tools+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
common=("${tools[@]}" -DOpenVINO_DIR="$openvino_cmake" -DDFF_BUILD_TESTS=ON -DDFF_TEST_EXPORT="$build/demo-export"
  -DDFF_TEST_DETECTION_EXPORT="$build/detection-export")

mkdir -p "$build"
model="$repo/dff/assets/demo_model.safetensors"
# Exported again when the model or the exporter changed since.
stale() {  # export folder, checkpoint
  [[ ! -f "$1/manifest.json" || "$2" -nt "$1/manifest.json" ||
    -n "$(find "$repo/dff/export" "$repo/dff/manifest.py" -newer "$1/manifest.json" -print -quit)" ]]
}
if stale "$build/demo-export" "$model"; then
  "$python" -m dff.cli export "$model" --out "$build/demo-export" > "$build/export.log" 2>&1 || { cat "$build/export.log"; exit 1; }
fi
# A randomly initialised tiny R-FCN: real boxes through every stage, in seconds.
detector="$build/detector.safetensors"
if [[ ! -f "$detector" ]]; then
  "$python" -m dff.cli init --task detection --feature tiny --flow tiny --num-classes 4 --out "$detector" \
    > "$build/init.log" 2>&1 || { cat "$build/init.log"; exit 1; }
fi
if stale "$build/detection-export" "$detector"; then
  "$python" -m dff.cli export "$detector" --out "$build/detection-export" --max-size 256x256 --max-detections 12 \
    > "$build/export-detection.log" 2>&1 || { cat "$build/export-detection.log"; exit 1; }
fi

configure_and_build() {  # folder, extra cmake arguments...
  local folder="$1"
  mkdir -p "$folder"
  shift
  # Configured every time (seconds when cached), so that a folder from an older ci.sh gets the options added since.
  cmake -S "$here" -B "$folder" "${common[@]}" "$@" > "$folder/configure.log" 2>&1 || { cat "$folder/configure.log"; exit 1; }
  grep -E '^-- dff:' "$folder/configure.log" || true
  nice cmake --build "$folder" -j "$jobs" > "$folder/build.log" 2>&1 || { cat "$folder/build.log"; exit 1; }
}

configure_and_build "$build" -DCMAKE_BUILD_TYPE=Release -DDFF_PYTHON="$python"
(cd "$build" && ctest --output-on-failure -LE python)

configure_and_build "$build/asan" -DCMAKE_BUILD_TYPE=Debug -DDFF_SANITIZE=ON -DDFF_BUILD_APPS=OFF
(cd "$build/asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure)

# A relocatable install: moved after installing, the consumer still finds it (paths in the package are relative).
rm -rf "$build/install" "$build/installed" "$build/consumer"
cmake --install "$build" --prefix "$build/install" > "$build/install.log"
mv "$build/install" "$build/installed"
cmake -S "$here/tests/consumer" -B "$build/consumer" -DCMAKE_PREFIX_PATH="$build/installed" "${tools[@]}" \
  > "$build/consumer.configure.log" 2>&1 || { cat "$build/consumer.configure.log"; exit 1; }
nice cmake --build "$build/consumer" -j "$jobs" > "$build/consumer.build.log" 2>&1 || { cat "$build/consumer.build.log"; exit 1; }
"$build/installed/bin/dff_video" "$build/demo-export" "$repo/../shared/data/camvid_0016E5/images" -l 5 --max-frames 6 \
  --labels-dir "$build/consumer/labels" --overlay "$build/consumer/overlay.mp4" --summary "$build/consumer/summary.json"
"$build/consumer/embed" "$build/demo-export" "$build/consumer/overlay.mp4"
"$build/installed/bin/dff_video" "$build/detection-export" "$repo/../shared/data/videos/vtest.avi" -l 5 --max-frames 6 \
  --detections "$build/consumer/detections.jsonl" --overlay "$build/consumer/detections.mp4"
"$build/consumer/embed" "$build/detection-export" "$build/consumer/detections.mp4"
echo "built cpp/build/libdff.so, cpp/build/dff_video; installed to cpp/build/installed"
