"""Training: the variants of Table 3 (``dff train``) and F's pre-training (``dff train-flow``).

``python -m dff.train CONFIG`` is ``dff train CONFIG``; under torchrun every process trains one
replica (:mod:`dff.train.distributed`). Importing this package imports torch; the runtime never does.
"""
