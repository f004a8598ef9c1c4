"""Benchmarks of the runtime against the paper's speed-up model (Eq. 5-7), shared by ``dff bench`` and ``benchmarks/``.

* :mod:`dff.benchmark.complexity`: O(N_feat), O(F), O(N_task) in multiply-accumulates, from the
  ONNX graphs of an export (torch-free) or from a checkpoint's modules, and the FLOP r of Eq. 6.
* :mod:`dff.benchmark.frames`: the frames a benchmark runs on (a video, a folder, or the synthetic video).
* :mod:`dff.benchmark.speedup`: stage timings, measured r (Eq. 5), and measured against predicted
  speed-up s (Eq. 7) for a range of key-frame intervals l, on one backend in one process.
* :mod:`dff.benchmark.plot`: speed-up against l as a PNG.
* :mod:`dff.benchmark.training` and :mod:`dff.benchmark.study`: training models no ModelConfig
  describes, and the shared setting of the accuracy studies (Figure 3, Table 5). Both import torch.

``dff bench`` on an export directory imports no torch (the first four modules).
"""
