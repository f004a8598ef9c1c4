"""The two paths of Algorithm 1 as one ONNX graph each, composed from an export's separate files.

* ``key_path.onnx``: frame → N_feat → N_task; outputs the key features ``feat`` and the task outputs.
* ``propagate.onnx``: (key_frame, frame, key_feat) → F → W → N_task; outputs the task outputs and, where
  ``flow.onnx`` has them, F's statistics ``flow_stats`` (the adaptive scheduler's signals).

On a backend that pays per call (ONNX Runtime's and OpenVINO's CPU paths: binding, dispatch and,
for small models, most of a stage's time) a frame is then one call instead of two or three. The
separate files stay the contract (TensorRT engines, splitting the stages across devices, ``dff
check``); the fused ones are the same nodes and weights, each component's internal names prefixed
by its role, so they compute exactly what the stages compute one after another.

Composed with the ``onnx`` package from the written files, so ``dff quantize`` builds them from its
int8 networks the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx import compose

from dff.manifest import FEAT, KEY_FEAT, ModelFile, TensorSpec, sha256_file
from dff.runtime.adaptive_signals import FLOW_STATS

#: Fused role → the separate roles it runs, in order.
FUSED_ROLES = {"key_path": ("feature", "task"), "propagate": ("flow", "warp", "task")}


def _compose(parts: Sequence[tuple[str, onnx.ModelProto]], outputs: Sequence[str], name: str) -> onnx.ModelProto:
    """One model running ``parts`` in order; a part's inputs are earlier parts' outputs of the same name, or inputs of
    the composition. Internal names are prefixed by the part's role, so that the parts' names cannot collide."""
    graphs = [compose.add_prefix_graph(model.graph, f"{role}/", rename_inputs=False, rename_outputs=False) for role, model in parts]
    produced: set[str] = set()
    inputs: list[onnx.ValueInfoProto] = []
    values: dict[str, onnx.ValueInfoProto] = {}
    for graph in graphs:
        inputs += [value for value in graph.input if value.name not in produced and value.name not in {i.name for i in inputs}]
        for value in graph.output:
            produced.add(value.name)
            values[value.name] = value
    graph = onnx.helper.make_graph(
        nodes=[node for g in graphs for node in g.node],
        name=name,
        inputs=inputs,
        outputs=[values[output] for output in outputs],
        initializer=[tensor for g in graphs for tensor in g.initializer],
        # Shapes of the tensors passed between the parts (they are no outputs of the composition) and inside each.
        value_info=[v for g in graphs for v in g.value_info] + [v for n, v in values.items() if n not in outputs],
    )
    first = parts[0][1]
    model = onnx.helper.make_model(graph, opset_imports=first.opset_import, producer_name=first.producer_name)
    model.ir_version = max(part.ir_version for _, part in parts)
    onnx.checker.check_model(model)
    return model


def write_fused_graphs(directory: Path, files: dict[str, ModelFile]) -> dict[str, ModelFile]:
    """Write ``key_path.onnx`` and ``propagate.onnx`` into ``directory`` from the separate files ``files`` there;
    returns their manifest entries by role."""
    models = {role: onnx.load(directory / files[role].file) for role in ("feature", "flow", "warp", "task")}
    task_outputs = files["task"].outputs
    flow_stats = tuple(spec for spec in files["flow"].outputs if spec.name == FLOW_STATS)
    feat = next(spec for spec in files["feature"].outputs if spec.name == FEAT)
    interfaces: dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]] = {
        "key_path": (files["feature"].inputs, (feat, *task_outputs)),
        "propagate": (
            (*files["flow"].inputs, next(spec for spec in files["warp"].inputs if spec.name == KEY_FEAT)),
            (*task_outputs, *flow_stats),
        ),
    }
    entries = {}
    for role, parts in FUSED_ROLES.items():
        inputs, outputs = interfaces[role]
        fused = _compose([(part, models[part]) for part in parts], [spec.name for spec in outputs], role)
        path = directory / f"{role}.onnx"
        onnx.save(fused, path)
        entries[role] = ModelFile(file=path.name, sha256=sha256_file(path), inputs=inputs, outputs=outputs)
    return entries
