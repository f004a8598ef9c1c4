"""The C++ runtime (libdff through its C API) against the Python runtime and against bare OpenVINO infer calls.

    nice .venv/bin/python benchmarks/bench_cpp.py [--frames 60] [-l 5] [--threads 1] [--height 256 --width 320]

Needs cpp/build (``bash cpp/ci.sh``). One process: libdff is loaded with ctypes next to the Python runtime, both on
OpenVINO f32 with the same threads, and a third contender makes only the bare ``InferRequest.infer()`` calls of the
same stages (feature + task on key frames, flow + warp + task otherwise) on models compiled the same way, with
their inputs already in place. The three take turns frame by frame, so machine load hits them alike. Per-frame time
is the wall time around each call (the C API's own figure is printed too). Prints the means and the ratios
C++ / bare infer and C++ / Python, and checks that the C++ labels equal the Python runtime's.
"""

from __future__ import annotations

import argparse
import ctypes
import tempfile
import time
from pathlib import Path

import numpy as np

from dff.manifest import load_manifest
from dff.quiet_openvino import import_openvino
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.runtime.backends.openvino import static_shape
from demo_clip import add_clip_arguments, export_demo, synthetic_clip

ov = import_openvino()

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "cpp" / "build" / "libdff.so"


class CppRuntime:
    """One stream of libdff through its C API (dff.h)."""

    def __init__(self, export: Path, interval: int, threads: int) -> None:
        if not LIBRARY.is_file():
            raise SystemExit(f"{LIBRARY} is missing: build the C++ runtime with `bash cpp/ci.sh` first")
        lib = self._lib = ctypes.CDLL(str(LIBRARY))
        lib.dff_last_error.restype = ctypes.c_char_p
        lib.dff_backend_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
                                         ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)]
        lib.dff_runtime_create.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
        lib.dff_runtime_reset.argtypes = [ctypes.c_void_p]
        lib.dff_runtime_process.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_size_t,
                                            ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int),
                                            ctypes.POINTER(ctypes.c_double)]
        options = (ctypes.c_char_p * 2)(f"threads={threads}".encode(), b"precision=f32")
        self._backend, self._runtime = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(lib.dff_backend_open(b"openvino", str(export).encode(), options, 2, ctypes.byref(self._backend)))
        self._check(lib.dff_runtime_create(self._backend, interval, ctypes.byref(self._runtime)))
        self._key, self._ms = ctypes.c_int(), ctypes.c_double()

    def reset(self) -> None:
        self._check(self._lib.dff_runtime_reset(self._runtime))

    def _check(self, status: int) -> None:
        if status != 0:
            raise SystemExit(f"libdff: {self._lib.dff_last_error().decode()}")

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, bool, float]:
        """Labels, key flag and the C API's own time (ms) of one frame."""
        labels = np.empty(image.shape[:2], np.uint8)
        self._check(self._lib.dff_runtime_process(
            self._runtime, image.ctypes.data, image.shape[0], image.shape[1], image.strides[0], labels.ctypes.data,
            labels.strides[0], ctypes.byref(self._key), ctypes.byref(self._ms)))
        return labels, bool(self._key.value), self._ms.value


class BareInfer:
    """The four networks compiled as the OpenVINO backend compiles them; each stage is one ``infer()`` on inputs in place."""

    def __init__(self, export: Path, height: int, width: int, threads: int) -> None:
        core, manifest = ov.Core(), load_manifest(export)
        config = {"INFERENCE_PRECISION_HINT": ov.Type.f32, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        self.requests = {}
        for role, entry in manifest.files().items():
            if role == "warp_plugin":
                continue
            model = core.read_model(str(export / entry.file))
            model.reshape({s.name: ov.PartialShape(static_shape(s.shape, height, width)) for s in entry.inputs})
            self.requests[role] = core.compile_model(model, "CPU", config).create_infer_request()

    def __call__(self, key: bool) -> None:
        for role in ("feature", "task") if key else ("flow", "warp", "task"):
            self.requests[role].infer()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(parser)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        export = export_demo(Path(tmp))
        clip = [frame for frame, _ in synthetic_clip(args)]
        cpp = CppRuntime(export, args.key_interval, args.threads)
        backend = open_backend("openvino", model=export, threads=args.threads)
        python = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(args.key_interval))
        bare = BareInfer(export, *python.network_size(args.height, args.width), args.threads)
        for image in clip[:2]:  # first runs allocate and tune; then the streams restart
            cpp(image), python(image), bare(True), bare(False)
        cpp.reset()
        python.reset()

        wall: dict[str, list[float]] = {"C++": [], "Python": [], "bare infer": []}
        own_ms, keys, equal = [], [], []
        for index, image in enumerate(clip):
            key = python.scheduler.since_key + 1 >= args.key_interval or index == 0  # the frame's path, for bare
            outputs = {}
            calls = {"C++": lambda: cpp(image), "Python": lambda: python(image), "bare infer": lambda: bare(key)}
            order = list(calls)[index % 3 :] + list(calls)[: index % 3]  # who goes first rotates: no order bias
            for name in order:
                start = time.perf_counter()
                outputs[name] = calls[name]()
                wall[name].append(time.perf_counter() - start)
            labels, cpp_key, ms = outputs["C++"]
            result = outputs["Python"]
            own_ms.append(ms)
            keys.append(result.key)
            equal.append(bool(np.array_equal(labels, result.labels)) and cpp_key == result.key == key)

    keys_arr = np.array(keys)
    print(f"demo model, synthetic video {args.frames} frames {args.height}x{args.width}, l = {args.key_interval}, "
          f"OpenVINO CPU f32, {args.threads} thread(s)")
    print(f"{'mean ms per frame':20s}{'all':>9s}{'key':>9s}{'non-key':>9s}")
    means = {}
    for name, times in wall.items():
        ms = 1000 * np.array(times)
        means[name] = (ms.mean(), ms[keys_arr].mean(), ms[~keys_arr].mean())
        print(f"{name:20s}" + "".join(f"{m:9.2f}" for m in means[name]))
    own = np.array(own_ms)
    print(f"{'C++ (own timing)':20s}{own.mean():9.2f}{own[keys_arr].mean():9.2f}{own[~keys_arr].mean():9.2f}")
    for a, b in (("C++", "bare infer"), ("C++", "Python")):
        print(f"{a + ' / ' + b:20s}" + "".join(f"{x / y:9.3f}" for x, y in zip(means[a], means[b])))
    print(f"C++ labels and schedule equal to the Python runtime's on {sum(equal)}/{len(equal)} frames")


if __name__ == "__main__":
    main()
