"""Export: a checkpoint → ``feature.onnx``, ``flow.onnx``, ``task.onnx``, ``warp.onnx``, ``warp_plugin.onnx`` and ``manifest.json``.

Where preprocessing lives, and why: inside the graphs. ``feature.onnx`` and ``flow.onnx`` take the
frames exactly as OpenCV decodes them, uint8 (N, H, W, 3) in BGR order, and cast, reorder to RGB
NCHW and normalise with the checkpoint's mean and std as their first nodes; ``task.onnx`` ends with
the per-pixel labels at frame size (bilinear ×16 upsampling of the probabilities, argmax, uint8).
So every runtime (ONNX Runtime, TensorRT, OpenCV DNN) gets the same preprocessing from the same
file, bit for bit, with nothing to re-implement and nothing to get wrong (channel order, mean/std
in the wrong scale) on the host; the host only resizes a frame to an allowed size. It also moves
a quarter of the bytes to the device (uint8 instead of float32), and the normalisation and the
argmax run there, fused by TensorRT into the neighbouring layers.

The warp W is exported twice: with standard ops (GridSample) and as one ``dff::DFFWarp`` node that
TensorRT maps to our plugin; ``dff check`` proves the two equal. See :mod:`dff.export.warp_graph`.
"""

from dff.export.exporter import export_checkpoint
from dff.export.options import ExportOptions

__all__ = ["ExportOptions", "export_checkpoint"]
