#!/usr/bin/env bash
# Every command works from a plain install (issue 11 item 15): build the wheel, install it without extras into a
# fresh virtual environment (the same package index and constraints as the development one: torch is the local CPU
# wheel), and run the CLI from there, outside the source tree, on a tiny model and a small frame folder.
#   PIP: the development environment's pip (its setuptools builds the wheel); PYTHON: the interpreter for the new venv.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
PIP=${PIP:-.venv/bin/pip}
PYTHON=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/dff-wheel-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start=$SECONDS

# The wheel, from the files git sees (tracked, or new and not ignored), so that no stale build/ slips in.
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done |
    xargs -0 cp --parents -t "$work/src"
"$PIP" wheel -q --no-deps --no-build-isolation -w "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/deep_feature_flow-*.whl)

"$PYTHON" -m venv "$work/venv"
# --no-compile: byte-compiling torch's sources is most of an install's time, and nothing here needs it done ahead.
"$work/venv/bin/pip" install -q --no-compile -c "$repo/constraints.txt" "$wheel"
echo "wheel check: installed $(basename "$wheel") without extras in $((SECONDS - start)) s"

cd "$work"
unset PYTHONPATH
export PATH="$work/venv/bin:$PATH"
python - <<'PY'
import importlib.util, sys
from pathlib import Path

import dff

# The installed package, not the source tree; and no extra was installed (onnx_graphsurgeon, pytest are [dev]).
assert Path(dff.__file__).is_relative_to(Path(sys.prefix)), dff.__file__
extras = [name for name in ("onnx_graphsurgeon", "pytest", "tensorrt") if importlib.util.find_spec(name)]
assert not extras, f"extras present in the fresh environment: {extras}"

import cv2
import numpy as np

frames = Path("frames")
frames.mkdir()
rng = np.random.default_rng(0)
for index in range(6):
    cv2.imwrite(str(frames / f"{index}.png"), rng.integers(0, 256, (72, 96, 3), dtype=np.uint8))
PY
dff --help > /dev/null
dff init --feature tiny --flow tiny --num-classes 3 --out ckpt/
dff export ckpt --out export --min-size 64 --max-size 128
dff check export --checkpoint ckpt > check.txt || { cat check.txt; exit 1; }
tail -1 check.txt
dff run export frames -l 3 --out overlay.mp4 --log timings.jsonl --labels-dir labels --no-progress > /dev/null
dff run export frames -l 3 --backend openvino --no-progress > /dev/null
dff run ckpt frames -l 3 --backend torch --no-progress > /dev/null
dff bench export --height 64 --width 64 --frames 6 --repeats 1 --warmup-frames 1 --intervals 1,2 --json > bench.json
python -c "import json; assert len(json.load(open('bench.json'))['rows']) == 2, 'dff bench gave no rows'"
python -c "import cv2; assert cv2.VideoCapture('overlay.mp4').read()[0], 'overlay.mp4 does not decode'"
[ "$(wc -l < timings.jsonl)" -eq 6 ] && [ "$(ls labels | wc -l)" -eq 6 ]
dff bench export --height 64 --width 64 --frames 6 --repeats 1 --warmup-frames 1 --intervals 1,2 --scheduler fixed -l 2 --json > scheduled.json
python -c "import json; assert json.load(open('scheduled.json'))['scheduled']['key_share'] == 0.5, 'dff bench --scheduler'"
# A detector, two sources at once: one detections file per stream.
cp -r frames frames2
dff init --task detection --feature tiny --flow tiny --num-classes 3 --out det/
dff export det --out det-export --min-size 64 --max-size 128
dff run det-export frames frames2 -l 3 --out-dir streams --no-progress > /dev/null
[ "$(wc -l < streams/frames/detections.jsonl)" -eq 6 ] && [ "$(wc -l < streams/frames2/detections.jsonl)" -eq 6 ]
echo "wheel check: dff --help, init, export, check, run (onnxruntime, openvino, torch, a detector on two sources), bench (and --scheduler) ok from the wheel in $((SECONDS - start)) s"
