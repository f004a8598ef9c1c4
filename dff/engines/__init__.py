"""TensorRT engines for an export: built per GPU by ``dff build``, cached, and checked before loading.

The pure-Python parts run without TensorRT and are tested everywhere:

* :mod:`dff.engines.gpu`: which GPU this is (name and compute capability).
* :mod:`dff.engines.profiles`: the optimisation profile (min/opt/max frame size) and the input shapes it gives.
* :mod:`dff.engines.records`: cache keys, build records, and the checks made before an engine is deserialised.
* :mod:`dff.engines.errors`: the errors, with the install command where TensorRT is missing.

:mod:`dff.engines.loaders` holds the thin TensorRT calls (Polygraphy-style loaders),
:mod:`dff.engines.cudart` the cuda-python calls, and :mod:`dff.engines.build` puts everything
together for ``dff build``. TensorRT and cuda-python are imported only inside functions, when
called, so importing :mod:`dff.engines` never needs them. The TensorRT backend of the runtime
(:mod:`dff.runtime.backends.tensorrt`) loads the engines through the same records.
"""
