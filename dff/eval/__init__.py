"""Evaluation: the paper's protocol (Section 5.2) for the modes of Table 4, ``dff eval``.

Modes: ``frame`` (per-frame N), ``dff`` (F and W from the key frame), ``copy`` (f_i = f_k) and
``sff`` (DIS optical flow in F's place). The mIoU itself is :mod:`dff.metrics`, torch-free.
"""
