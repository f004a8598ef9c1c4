"""Deep Feature Flow for video recognition (Zhu et al., CVPR 2017).

Importing ``dff`` imports neither torch nor any runtime: the runtime must work on
machines that only have ONNX Runtime or TensorRT.
"""

__version__ = "0.1.0"
