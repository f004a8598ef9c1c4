"""``check_export``: validate an export directory structurally and numerically, in three independent runtimes.

Structure, for every file: ``onnx.checker.check_model(full_check=True)``, strict shape inference,
and the graph's inputs and outputs against the manifest (names, dtypes, shapes) and its opset.
The plugin file passes both although ONNX knows nothing of ``dff::DFFWarp``: the checker only
validates nodes of domains it has schemas for, and needs just an opset import for the others;
shape inference leaves such a node's outputs as the graph declares them (we declare them all).
A DFFWarp node in the default domain, or without the ``dff`` opset import, would be rejected.

Numbers: each model runs in ONNX Runtime, OpenCV DNN and onnx's ReferenceEvaluator (see
:mod:`dff.export.runners`) and is compared with a reference: the checkpoint's networks in
float32 PyTorch when a checkpoint is given (so a float16 export is measured against float32),
otherwise ONNX Runtime's run of the same file (the warp's reference is always
:func:`dff.ops.warp.warp`). The plugin graph runs as it is in the ReferenceEvaluator (a NumPy
DFFWarp) and, with its node replaced by warp.onnx's subgraph, in the other two. Inputs: random
frames and tensors at the smallest allowed size and a second one, and two real frames (a key
frame and one five frames later) pushed through the reference chain feature → flow → warp → task,
each model fed the reference's outputs of the model before.

The fused graphs (``key_path.onnx``, ``propagate.onnx``, where the export has them) pass the same structural checks
and run in ONNX Runtime, the engine that runs them, on every input set against the composition of the separate files
there (feature → task; flow → warp → task), output by output; and the labels the host computes from their
probabilities (:mod:`dff.runtime.label_tail`, what the CPU backends return) against those probabilities upsampled in
float64. So does ``flow.onnx`` split at its first convolution as the CPU backends run it, the key frame's half computed
apart (:mod:`dff.runtime.key_flow_half`), against the file.

A detection export's ``task.onnx`` is compared by matched detections instead, in every runtime and OpenVINO
(:mod:`dff.export.detection_check`).

Error of a tensor: max |runtime - reference| over the reference's largest magnitude (``max_rel``);
of labels: the largest probability the chosen class falls short of the reference's best class,
so that ties broken differently between runtimes are not errors.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from google.protobuf.message import DecodeError

from dff.checkpoint import load_checkpoint
from dff.checkpoint_path import checkpoint_file
from dff.errors import CheckpointError, ExportError
from dff.export.detection_check import DetectionReference, detection_comparisons
from dff.export.runners import RUNTIMES, Runner, runner, runner_class
from dff.export.perturb import WEIGHT_STD, perturb_last_layers
from dff.export.surgery import inline_warp_plugin
from dff.export.torch_graphs import FeatureGraph, FlowGraph, TaskGraph
from dff.frames import FEATURE_STRIDE
from dff.manifest import (
    FEAT,
    FLOW,
    FRAME,
    KEY_FEAT,
    KEY_FRAME,
    LABELS,
    PROBS,
    SCALE,
    Manifest,
    ModelFile,
    TensorSpec,
    invalid_model,
    load_manifest,
    sha256_file,
)
from dff.ops.warp import warp
from dff.runtime.adaptive_signals import FLOW_STATS
from dff.runtime.key_flow_half import KEY_FLOW_HALF, split_key_half
from dff.runtime.label_tail import host_tail_possible, labels_from_probs
from dff.sources import open_source

#: Allowed ``max_rel`` (and label margin) per export dtype. float32 graphs differ from PyTorch by reordered
#: sums only; float16 ones by float16 rounding of weights and activations through up to ~50 layers.
TOLERANCES = {"float32": 1e-4, "float16": 3e-2}
#: The second real frame is this many frames after the key frame (a typical key-frame interval is 5-10).
FRAME_GAP = 5
#: Real frames are resized to the allowed size nearest to this long side, keeping their aspect ratio.
DEFAULT_LONG_SIDE = 256

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Comparison:
    """One output of one model in one runtime, on one input set, against the reference."""

    model: str
    runtime: str
    inputs: str
    output: str
    max_abs: float
    max_rel: float
    tolerance: float
    #: The reference is constant on these inputs (F's M = 0 and S = 1 of a fresh checkpoint): agreeing proves nothing.
    vacuous: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.max_rel <= self.tolerance)

    @property
    def status(self) -> str:
        return "FAIL" if not self.ok else "vacuous" if self.vacuous else "ok"


@dataclass(frozen=True)
class CheckReport:
    reference: str
    structure: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    #: What the check did about constant references (the perturbed copy of F), one line each.
    notes: tuple[str, ...] = ()

    def unchecked(self) -> list[str]:
        """``model.output`` names whose every comparison is vacuous: nothing was checked for them."""
        outputs: dict[str, bool] = {}
        for c in self.comparisons:
            key = f"{c.model}.{c.output}"
            outputs[key] = outputs.get(key, False) or not c.vacuous
        return [key for key, checked in outputs.items() if not checked]

    @property
    def ok(self) -> bool:
        """Every comparison within tolerance, and every output compared at least once on a non-constant reference."""
        return all(c.ok for c in self.comparisons) and not self.unchecked()

    def worst(self) -> list[Comparison]:
        """Per (model, runtime, output), the comparison with the largest max_rel, preferring non-vacuous ones."""
        worst: dict[tuple[str, str, str], Comparison] = {}
        for c in self.comparisons:
            key = (c.model, c.runtime, c.output)
            if key not in worst or (not c.vacuous, c.max_rel) > (not worst[key].vacuous, worst[key].max_rel):
                worst[key] = c
        return list(worst.values())

    def lines(self, *, verbose: bool = False) -> list[str]:
        """The report as text: every comparison with ``verbose``, else the worst per model, runtime and output."""
        rows = [f"structure: {line}" for line in self.structure]
        rows.append(f"reference: {self.reference}")
        rows.append("max_rel = max|error| / max|reference|; labels: the reference probability lost by the chosen class")
        header = ("model", "runtime", "output", "worst inputs" if not verbose else "inputs", "max_abs", "max_rel", "tolerance", "")
        table = [header] + [
            (c.model, c.runtime, c.output, c.inputs, f"{c.max_abs:.3g}", f"{c.max_rel:.3g}", f"{c.tolerance:.0e}", c.status)
            for c in (self.comparisons if verbose else self.worst())
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        rows += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
        rows += list(self.notes)
        failed = sum(not c.ok for c in self.comparisons)
        vacuous = sum(c.vacuous and c.ok for c in self.comparisons)
        passed = len(self.comparisons) - failed - vacuous
        rows.append(
            f"{passed} of {len(self.comparisons)} comparisons within tolerance"
            + (f"; {vacuous} vacuous (constant reference: they test nothing and do not count as passes)" if vacuous else "")
        )
        if self.unchecked():
            rows.append(
                f"NOT CHECKED: {', '.join(self.unchecked())}: every comparison of these compared constants; the check fails"
            )
        return rows


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    dims = tuple(d.dim_param if d.HasField("dim_param") else d.dim_value for d in tensor.shape.dim)
    return TensorSpec(name=value.name, dtype=onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name, shape=dims)


def check_structure(directory: Path, manifest: Manifest) -> tuple[dict[str, onnx.ModelProto], list[str]]:
    """Load every model, the fused ones too, and check it (checker, strict shape inference, interface, opset);
    ExportError on failure."""
    models, notes = {}, []
    for role, entry in manifest.all_files().items():
        path = directory / entry.file
        try:
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
            onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        except (DecodeError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
            raise invalid_model(path, role, error) from None
        _check_interface(path, model, entry, manifest.opset)
        models[role] = model
        notes.append(f"{entry.file}: checker (full_check) ok, strict shape inference ok, interface and opset match manifest")
    return models, notes


def _check_interface(path: Path, model: onnx.ModelProto, entry: ModelFile, opset: int) -> None:
    initializers = {i.name for i in model.graph.initializer}
    found = (tuple(_spec(v) for v in model.graph.input if v.name not in initializers), tuple(_spec(v) for v in model.graph.output))
    if found != (entry.inputs, entry.outputs):
        raise ExportError(
            f"{path} does not have the interface its manifest states: graph {found}, manifest {(entry.inputs, entry.outputs)}; "
            "export again with `dff export`"
        )
    versions = {o.domain: o.version for o in model.opset_import}
    if versions.get("", versions.get("ai.onnx")) != opset:
        raise ExportError(f"{path} imports opset {versions}, the manifest states {opset}: export again with `dff export`")


class Reference:
    """The outputs each model should give: PyTorch float32 with a checkpoint, else ONNX Runtime; the warp always PyTorch."""

    def __init__(self, manifest: Manifest, models: Mapping[str, onnx.ModelProto], checkpoint: Path | None) -> None:
        self._files = manifest.files()
        self._graphs: dict[str, torch.nn.Module] = {}
        if checkpoint is None:
            self.name = "onnxruntime (no --checkpoint given); warp: dff.ops.warp (PyTorch, float64)"
            self._networks = {role: runner("onnxruntime", models[role]) for role in ("feature", "flow", "task")}
            return
        checkpoint = checkpoint_file(checkpoint)
        if manifest.checkpoint_sha256 not in (None, sha256_file(checkpoint)):
            raise CheckpointError(
                f"checkpoint {checkpoint} is not the one this export was made from (its SHA-256 differs from the "
                "manifest's): pass the exported checkpoint, or export this one again"
            )
        model, config = load_checkpoint(checkpoint)
        self.name = "the checkpoint in PyTorch, float32; warp: dff.ops.warp (PyTorch, float64)"
        self._graphs = {
            "feature": FeatureGraph(feature_net=model.feature_net, config=config, dtype=torch.float32).eval(),
            "flow": FlowGraph(
                flow_net=model.flow_net,
                config=config,
                dtype=torch.float32,
                statistics=any(spec.name == FLOW_STATS for spec in self._files["flow"].outputs),
            ).eval(),
            "task": (
                DetectionReference(task_net=model.task_net, max_detections=manifest.max_detections).eval()
                if config.task == "detection"
                else TaskGraph(task_net=model.task_net).eval()
            ),
        }
        self._networks = {role: self._torch_runner(role, graph) for role, graph in self._graphs.items()}

    def with_weights(self, role: str, model: onnx.ModelProto, weights: Mapping[str, np.ndarray]) -> Callable[[Feeds], Feeds]:
        """The reference of ``model``, ``role``'s graph with the initializers ``weights`` changed: a PyTorch copy with
        the same parameters changed (the exporter keeps their names), or ONNX Runtime's run of ``model``."""
        if not self._graphs:
            return runner("onnxruntime", model)
        graph = copy.deepcopy(self._graphs[role])
        parameters = graph.state_dict()
        foreign = sorted(set(weights) - set(parameters))
        if foreign:
            raise ExportError(
                f"{self._files[role].file} has initializers {foreign} that are no parameters of the checkpoint's "
                "networks: it was not exported from this checkpoint's architecture; export again"
            )
        with torch.no_grad():
            for name, value in weights.items():
                parameters[name].copy_(torch.from_numpy(value.astype(np.float32)))
        return self._torch_runner(role, graph)

    def _torch_runner(self, role: str, graph: torch.nn.Module) -> Callable[[Feeds], Feeds]:
        entry = self._files[role]

        def run(feeds: Feeds) -> Feeds:
            inputs = [_torch_input(feeds[spec.name]) for spec in entry.inputs]
            with torch.no_grad():
                outputs = graph(*inputs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            return {spec.name: value.numpy() for spec, value in zip(entry.outputs, outputs)}

        return run

    def __call__(self, role: str, feeds: Feeds) -> Feeds:
        if role in ("warp", "warp_plugin"):
            with torch.no_grad():
                out = warp(*(_torch_input(feeds[name], torch.float64) for name in (KEY_FEAT, FLOW, SCALE)))
            return {FEAT: out.numpy()}
        return self._networks[role](feeds)


def _torch_input(value: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(value))
    return tensor if tensor.dtype == torch.uint8 else tensor.to(dtype)


@dataclass(frozen=True)
class InputSet:
    name: str
    feeds: dict[str, Feeds]  # by role


def _random_inputs(manifest: Manifest, height: int, width: int, rng: np.random.Generator) -> InputSet:
    """Random frames, features (>= 0, as after ReLU), flows of a few cells (many samples outside the map), scales."""
    dtype = np.dtype(manifest.dtype)
    n, c = 2, manifest.model.channels
    fh, fw = height // manifest.feature_stride, width // manifest.feature_stride

    def frames() -> np.ndarray:
        return rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)

    def feat() -> np.ndarray:
        return np.abs(rng.standard_normal((n, c, fh, fw))).astype(dtype)

    warp_feeds = {
        KEY_FEAT: feat(),
        FLOW: (rng.standard_normal((n, 2, fh, fw)) * 2.0).astype(dtype),
        SCALE: rng.uniform(0.5, 1.5, (n, c, fh, fw)).astype(dtype),
    }
    return InputSet(
        name=f"random {n}x{height}x{width}",
        feeds={
            "feature": {"frame": frames()},
            "flow": {"key_frame": frames(), "frame": frames()},
            "task": {FEAT: feat()},
            "warp": warp_feeds,
            "warp_plugin": warp_feeds,
        },
    )


def _frame_inputs(manifest: Manifest, reference: Reference, key: np.ndarray, current: np.ndarray) -> InputSet:
    """Batch (key, current): features of both; flow of (key → key) and (key → current); their warp; its task."""
    dtype = np.dtype(manifest.dtype)
    frames = np.stack((key, current))
    key_frames = np.stack((key, key))
    # Each model is fed the reference's outputs of the model before, in the export's dtype (values beyond float16's
    # range become inf and fail the comparisons downstream, as they would fail in the runtime).
    with np.errstate(over="ignore"):
        feat = reference("feature", {"frame": frames})[FEAT].astype(dtype)
        flow = {k: v.astype(dtype) for k, v in reference("flow", {"key_frame": key_frames, "frame": frames}).items()}
        warp_feeds = {KEY_FEAT: feat[[0, 0]], FLOW: flow[FLOW], SCALE: flow[SCALE]}
        warped = reference("warp", warp_feeds)[FEAT].astype(dtype)
    height, width = key.shape[:2]
    return InputSet(
        name=f"frames 2x{height}x{width}",
        feeds={
            "feature": {"frame": frames},
            "flow": {"key_frame": key_frames, "frame": frames},
            "task": {FEAT: warped},
            "warp": warp_feeds,
            "warp_plugin": warp_feeds,
        },
    )


def read_frame_pair(source: str | Path, size: tuple[int, int] | None, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """The first frame of ``source`` and the one FRAME_GAP later (or its last), resized to ``size`` or a default."""
    images = []
    for frame in open_source(source):
        images.append(frame.image)
        if len(images) > FRAME_GAP:
            break
    if len(images) < 2:
        raise ExportError(f"--frames {source} has {len(images)} frame(s); give a folder or video with at least 2")
    key, current = images[0], images[-1]
    if size is None:
        height, width = key.shape[:2]
        factor = DEFAULT_LONG_SIDE / max(height, width)
        size = manifest.sizes.nearest(round(height * factor), round(width * factor))
    manifest.sizes.check(*size)
    return tuple(cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for image in (key, current))  # type: ignore[return-value]


def _compare(expected: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """(max abs error, max abs error / max |expected|); infinite for a wrong shape or a non-finite value."""
    if expected.shape != got.shape:
        return float("inf"), float("inf")
    with np.errstate(invalid="ignore", over="ignore"):
        error = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max(initial=0.0))
    if not np.isfinite(error):
        return float("inf"), float("inf")  # float16 overflow shows up here
    peak = float(np.abs(expected.astype(np.float64)).max(initial=0.0))
    return error, error / peak if peak > 0 else error


def _label_margin(expected_probs: np.ndarray, labels: np.ndarray) -> float:
    """max over pixels of (best reference probability - reference probability of the chosen label), at frame size."""
    probs = torch.from_numpy(expected_probs.astype(np.float64))
    probs = F.interpolate(probs, scale_factor=FEATURE_STRIDE, mode="bilinear", align_corners=False).numpy()
    if not (labels.shape == (probs.shape[0], *probs.shape[2:]) and labels.max(initial=0) < probs.shape[1]):
        return float("inf")
    chosen = np.take_along_axis(probs, labels.astype(np.int64)[:, None], axis=1)[:, 0]
    return float((probs.max(axis=1) - chosen).max(initial=0.0))


def check_export(
    directory: str | Path,
    *,
    checkpoint: str | Path | None = None,
    frames: str | Path | None = None,
    frame_size: tuple[int, int] | None = None,
    runtimes: Sequence[str] = RUNTIMES,
    seed: int = 0,
) -> CheckReport:
    """Check the export in ``directory``; see the module docstring. Raises DFFError subclasses on unusable input."""
    directory = Path(directory)
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        raise ExportError(f"unknown runtime(s) {unknown}: choose from {list(RUNTIMES)}")
    manifest = load_manifest(directory)
    models, structure = check_structure(directory, manifest)
    inlined = inline_warp_plugin(models["warp_plugin"], models["warp"])
    onnx.checker.check_model(inlined, full_check=True)
    structure.append("warp_plugin.onnx with DFFWarp replaced by warp.onnx's subgraph: checker (full_check) ok")
    reference = Reference(manifest, models, None if checkpoint is None else Path(checkpoint))

    rng = np.random.default_rng(seed)
    sizes = manifest.sizes
    shapes = dict.fromkeys([(sizes.min_height, sizes.min_width), sizes.nearest(sizes.min_height + 32, sizes.min_width + 64)])
    input_sets = [_random_inputs(manifest, height, width, rng) for height, width in shapes]
    if frames is not None:
        input_sets.append(_frame_inputs(manifest, reference, *read_frame_pair(frames, frame_size, manifest)))

    tolerance = TOLERANCES[manifest.dtype]
    runners: dict[tuple[str, str], Runner] = {}
    comparisons, notes = [], []
    detection_runs: dict = {}
    for inputs in input_sets:
        for role in manifest.files():
            expected = reference(role, inputs.feeds[role])
            if role == "task" and manifest.task == "detection":
                # Without a checkpoint ONNX Runtime is the reference itself, as for the other graphs.
                others = [r for r in runtimes if not (checkpoint is None and r == "onnxruntime")]
                found, said = detection_comparisons(
                    models[role], inputs.name, expected, inputs.feeds[role], others, detection_runs, tolerance
                )
                comparisons += found
                notes += [line for line in said if line not in notes]
                continue
            for runtime in runtimes:
                if checkpoint is None and runtime == "onnxruntime" and role in ("feature", "flow", "task"):
                    continue  # ONNX Runtime is the reference itself
                if (runtime, role) not in runners:
                    use_plugin = role != "warp_plugin" or runner_class(runtime).runs_plugin
                    runners[runtime, role] = runner(runtime, models[role] if use_plugin else inlined)
                run = runners[runtime, role]
                label = runtime if role != "warp_plugin" or run.runs_plugin else f"{runtime} (DFFWarp inlined)"
                comparisons += _comparisons(role, label, inputs.name, expected, run(inputs.feeds[role]), tolerance)
    if manifest.fused_files():
        comparisons += _fused_comparisons(manifest, models, input_sets, tolerance)
    comparisons += _key_half_comparisons(models["flow"], input_sets, tolerance)
    if any(c.vacuous for c in comparisons if c.model == "flow"):
        runtimes = [r for r in runtimes if not (checkpoint is None and r == "onnxruntime")]
        flow_notes, perturbed = _check_perturbed_flow(models["flow"], reference, input_sets, runtimes, tolerance, seed)
        notes += flow_notes
        comparisons += perturbed
    return CheckReport(
        reference=reference.name, structure=tuple(structure), comparisons=tuple(comparisons), notes=tuple(notes)
    )


def _comparisons(role: str, runtime: str, inputs: str, expected: Feeds, got: Feeds, tolerance: float) -> list[Comparison]:
    """One comparison per output of ``role``; vacuous where the reference (for labels: its probabilities) is constant."""
    comparisons = []
    for name, value in expected.items():
        if name == LABELS:
            max_abs = max_rel = _label_margin(expected[PROBS], got[name])
            constant = _is_constant(expected[PROBS])
        else:
            max_abs, max_rel = _compare(value, got[name])
            constant = _is_constant(value)
        comparisons.append(Comparison(role, runtime, inputs, name, max_abs, max_rel, tolerance, vacuous=constant))
    return comparisons


def _fused_comparisons(
    manifest: Manifest, models: Mapping[str, onnx.ModelProto], input_sets: Sequence[InputSet], tolerance: float
) -> list[Comparison]:
    """Each fused graph in ONNX Runtime against the separate files composed in ONNX Runtime, on every input set, and
    the host's labels from its probabilities (segmentation exports with float32 ones) against those probabilities.

    What is checked is the composition (names wired, nothing left out), so a constant output is no vacuous comparison
    here: the stages' own comparisons above say whether their outputs vary."""
    run = {role: runner("onnxruntime", models[role]) for role in ("feature", "flow", "warp", "task", *manifest.fused_files())}
    host_tail = host_tail_possible(manifest)
    comparisons = []
    for inputs in input_sets:
        frames, feeds = inputs.feeds["feature"], inputs.feeds["flow"]
        feat = run["feature"](frames)[FEAT]
        flow = run["flow"](feeds)
        key_feat = inputs.feeds["warp"][KEY_FEAT]
        warped = run["warp"]({KEY_FEAT: key_feat, FLOW: flow[FLOW], SCALE: flow[SCALE]})[FEAT]
        composed = {
            "key_path": ({FEAT: feat, **run["task"]({FEAT: feat})}, frames),
            "propagate": (
                {**run["task"]({FEAT: warped}), **{k: v for k, v in flow.items() if k == FLOW_STATS}},
                {**feeds, KEY_FEAT: key_feat},
            ),
        }
        for role in manifest.fused_files():
            expected, fused_feeds = composed[role]
            got = run[role](fused_feeds)
            for comparison in _comparisons(role, "onnxruntime", f"{inputs.name}, against the stages composed", expected, got, tolerance):
                comparisons.append(dataclasses.replace(comparison, vacuous=False))
            if host_tail:
                # The tail alone: against the float64 upsampling of the very probabilities it read.
                margin = _label_margin(got[PROBS], np.stack([labels_from_probs(p) for p in got[PROBS]]))
                comparisons.append(Comparison(role, "host label tail", inputs.name, LABELS, margin, margin, tolerance))
    return comparisons


def _key_half_comparisons(
    flow: onnx.ModelProto, input_sets: Sequence[InputSet], tolerance: float, note: str = ""
) -> list[Comparison]:
    """``flow`` split at conv1 as the CPU backends run it (:mod:`dff.runtime.key_flow_half`), in ONNX Runtime, against
    the graph itself in ONNX Runtime, on every input set; none where the graph has another form (an int8 export)."""
    split = split_key_half(flow)
    if split is None:
        return []
    whole, rest, half = (runner("onnxruntime", model) for model in (flow, split.graph, split.key_half))
    comparisons = []
    for inputs in input_sets:
        feeds = inputs.feeds["flow"]
        got = rest({FRAME: feeds[FRAME], KEY_FLOW_HALF: half({KEY_FRAME: feeds[KEY_FRAME]})[KEY_FLOW_HALF]})
        comparisons += _comparisons("flow", "key-half split (onnxruntime)", inputs.name + note, whole(feeds), got, tolerance)
    return comparisons


def _is_constant(value: np.ndarray) -> bool:
    return bool(value.size == 0 or np.ptp(value.astype(np.float64)) == 0)


def _check_perturbed_flow(
    flow: onnx.ModelProto,
    reference: Reference,
    input_sets: Sequence[InputSet],
    runtimes: Sequence[str],
    tolerance: float,
    seed: int,
) -> tuple[list[str], list[Comparison]]:
    """F's comparisons again, on a copy of flow.onnx whose last layers have random weights, and the reference likewise.

    A fresh checkpoint's F gives M = 0 and S = 1 whatever its input (Section 3: F starts as the identity
    propagation), so the comparisons on the export as it is are vacuous; on the copy, M and S vary.
    """
    perturbed, weights = perturb_last_layers(flow, (FLOW, SCALE), seed=seed)
    if not weights:
        return ["flow: the reference's M and S are constant and flow.onnx has no last convolution to perturb: "
                "flow and scale are not checked"], []
    expected_of = reference.with_weights("flow", perturbed, weights)
    runs = {runtime: runner(runtime, perturbed) for runtime in runtimes}
    comparisons = []
    for inputs in input_sets:
        feeds = inputs.feeds["flow"]
        expected = expected_of(feeds)
        for runtime, run in runs.items():
            comparisons += _comparisons("flow", runtime, f"{inputs.name}, last layers perturbed", expected, run(feeds), tolerance)
    comparisons += _key_half_comparisons(perturbed, input_sets, tolerance, ", last layers perturbed")
    note = (
        "flow: the reference's M and S are constant on these inputs (a fresh checkpoint's F gives M = 0, S = 1 by "
        "design), so those comparisons are vacuous; flow.onnx is compared again with the weights of its last layers "
        f"({', '.join(weights)}) drawn at random (seed {seed}, std {WEIGHT_STD}), the same in the reference"
    )
    return [note], comparisons
