"""The warp graphs alone: standard form and plugin form against dff.ops.warp in every runtime, surgery, checker claims."""

import numpy as np
import onnx
import pytest
import torch

from dff.errors import ConfigError, ExportError
from dff.export.runners import RUNTIMES, runner
from dff.export.surgery import inline_warp_plugin
from dff.export.warp_graph import PLUGIN_DOMAIN, PLUGIN_OP, warp_model, warp_plugin_model
from dff.ops.warp import warp, warp_reference

SHAPE = dict(batch="N", channels=3, feat_hw=("h", "w"))


def _case(seed, *, n=2, c=3, h=5, w=7, dtype=np.float32):
    rng = np.random.default_rng(seed)
    # Flows of ±3 cells on a 5×7 map: many samples fall partly or wholly outside and must read zeros.
    return {
        "key_feat": rng.standard_normal((n, c, h, w)).astype(dtype),
        "flow": (rng.standard_normal((n, 2, h, w)) * 3).astype(dtype),
        "scale": rng.uniform(0.5, 1.5, (n, c, h, w)).astype(dtype),
    }


def _expected(feeds):
    """Eq. (1) as a direct sum (dff.ops.warp_reference), in float64."""
    args = (torch.from_numpy(feeds[k].astype(np.float64)) for k in ("key_feat", "flow", "scale"))
    return warp_reference(*args).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_standard_and_plugin_forms_match_eq1_in_every_runtime(runtime, dtype):
    np_dtype = np.dtype(dtype)
    standard = warp_model(opset=17, dtype=dtype, **SHAPE)
    plugin = warp_plugin_model(opset=17, dtype=dtype, **SHAPE)
    inlined = inline_warp_plugin(plugin, standard)
    # float32: reordered sums only; float16: the inputs are float16 already, the output is rounded once (2^-11).
    tolerance = 1e-5 if dtype == "float32" else 2e-3
    for seed in range(3):
        feeds = _case(seed, dtype=np_dtype)
        expected = _expected(feeds)
        peak = np.abs(expected).max()
        forms = {"standard": standard, "inlined plugin": inlined}
        if runtime == "reference":
            forms["plugin node (NumPy DFFWarp)"] = plugin
        for form, model in forms.items():
            got = runner(runtime, model)(feeds)["feat"]
            assert got.shape == expected.shape, form
            assert np.abs(got - expected).max() <= tolerance * peak, (form, np.abs(got - expected).max())


def test_one_cell_axes_and_output_grid_differing_from_the_map():
    # dff.ops.warp's convention (max(size - 1, 1) in its grid): a one-cell axis samples its only cell, which Eq. (1)
    # as written does not; and the output takes the flow's size.
    feeds = _case(7, h=1, w=4)
    feeds["flow"] = _case(8, h=3, w=6)["flow"]
    feeds["scale"] = _case(9, h=3, w=6)["scale"]
    expected = warp(*(torch.from_numpy(feeds[k].astype(np.float64)) for k in ("key_feat", "flow", "scale"))).numpy()
    for model in (warp_model(opset=16, dtype="float32", **SHAPE), warp_plugin_model(opset=16, dtype="float32", **SHAPE)):
        got = runner("reference", model)(feeds)["feat"]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_plugin_node_carries_what_tensorrt_looks_up():
    plugin = warp_plugin_model(opset=17, dtype="float16", **SHAPE)
    (node,) = plugin.graph.node
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert (node.op_type, node.domain) == (PLUGIN_OP, PLUGIN_DOMAIN) == ("DFFWarp", "dff")
    assert attrs == {"plugin_version": b"1", "plugin_namespace": b"dff"}
    assert list(node.input) == ["key_feat", "flow", "scale"] and list(node.output) == ["feat"]
    assert {o.domain: o.version for o in plugin.opset_import} == {"": 17, "dff": 1}


def test_checker_tolerates_the_custom_domain_only_when_it_is_declared():
    plugin = warp_plugin_model(opset=17, dtype="float32", **SHAPE)
    onnx.checker.check_model(plugin, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(plugin, check_type=True, strict_mode=True)
    assert [d.dim_param or d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim] == ["N", 3, "h", "w"]
    undeclared = onnx.ModelProto()
    undeclared.CopyFrom(plugin)
    del undeclared.opset_import[1]
    with pytest.raises(onnx.checker.ValidationError, match="No opset import for domain 'dff'"):
        onnx.checker.check_model(undeclared, full_check=True)
    default_domain = onnx.ModelProto()
    default_domain.CopyFrom(plugin)
    default_domain.graph.node[0].domain = ""
    with pytest.raises(onnx.checker.ValidationError, match="No Op registered for DFFWarp"):
        onnx.checker.check_model(default_domain, full_check=True)


def test_surgery_leaves_pure_onnx_and_rejects_a_wrong_plugin_version():
    standard = warp_model(opset=17, dtype="float32", **SHAPE)
    plugin = warp_plugin_model(opset=17, dtype="float32", **SHAPE)
    inlined = inline_warp_plugin(plugin, standard)
    onnx.checker.check_model(inlined, full_check=True)
    assert {o.domain for o in inlined.opset_import} == {""}
    assert PLUGIN_OP not in {n.op_type for n in inlined.graph.node}
    assert len(standard.graph.initializer) and all(i.name.startswith("warp/") for i in standard.graph.initializer)
    plugin.graph.node[0].attribute[0].s = b"2"
    with pytest.raises(ExportError, match="plugin_version"):
        inline_warp_plugin(plugin, standard)


@pytest.mark.parametrize("opset", [15, 20])
def test_opsets_outside_16_to_19_are_refused_with_the_reason(opset):
    with pytest.raises(ConfigError, match=r"between 16 and 19, got %d.*NVIDIA/TensorRT#4646" % opset):
        warp_model(opset=opset, dtype="float32", **SHAPE)
