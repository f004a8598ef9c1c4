"""Sub-commands of the ``dff`` CLI, one module each (see :mod:`dff.cli`)."""
