"""Serving on Triton Inference Server: stateful video streams over the network.

:mod:`~dff.serve.repository` writes a model repository (a Python-backend model under the sequence batcher),
:mod:`~dff.serve.triton_model` is that model, :mod:`~dff.serve.sequences` its per-sequence runtime,
:mod:`~dff.serve.environment` the server's own Python environment, :mod:`~dff.serve.server` the server process and
:mod:`~dff.serve.client` a stream's client. Importing this package imports neither tritonclient nor the server.
"""
