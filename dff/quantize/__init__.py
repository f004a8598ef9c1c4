"""int8 post-training quantization of an export (``dff quantize``): calibration, Q/DQ graphs, TensorRT rules, accuracy.

* :mod:`dff.quantize.calibration`: real frames, through the runtime, as N_feat's and F's inputs;
* :mod:`dff.quantize.quantizer`: one network → explicit Q/DQ int8 (ONNX Runtime's static quantizer);
* :mod:`dff.quantize.export`: a float export → a complete int8 export folder with its manifest;
* :mod:`dff.quantize.tensorrt_rules`: the graphs checked against TensorRT's explicit-quantization rules;
* :mod:`dff.quantize.accuracy`: the int8 export against its float export at the task level.
"""

from dff.quantize.export import QuantizeOptions, quantize_export

__all__ = ["QuantizeOptions", "quantize_export"]
