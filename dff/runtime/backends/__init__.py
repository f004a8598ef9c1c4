"""Backends by name: each module here defines one :class:`~dff.runtime.backend.Backend` subclass as ``BACKEND``.

A backend's name is its module's name, and a module is imported only when its backend is asked
for, so ``onnxruntime`` runs without torch and nothing needs TensorRT until ``tensorrt`` is
opened. Adding a backend adds a module; this file does not change.

Every backend's constructor takes ``model`` (what it loads: an export directory, or a checkpoint
for ``torch``) and its own keyword-only options. Option values are checked against the
constructor's type annotations before it runs (:mod:`dff.runtime.backends._options`), so a value
of the wrong type is a one-line ConfigError naming the option, while errors raised inside a
constructor are that backend's own.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

from dff.errors import ConfigError
from dff.runtime.backend import Backend
from dff.runtime.backends._options import OptionError, coerce_options


def backend_names() -> list[str]:
    """The names of the backends in this package (installed or not)."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def backend_class(name: str) -> type[Backend]:
    """The backend class called ``name``, imported on first use."""
    if name not in backend_names():
        raise ConfigError(f"unknown backend {name!r}; the backends are {backend_names()}")
    return importlib.import_module(f"{__name__}.{name}").BACKEND


def backend_options(name: str) -> list[str]:
    """The keyword options backend ``name`` takes besides ``model``."""
    parameters = inspect.signature(backend_class(name).__init__).parameters
    return [p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "model"]


def open_backend(name: str, *, model: str | Path, **options: Any) -> Backend:
    """Backend ``name`` loaded from ``model`` with ``options``.

    An option it does not take, or a value that does not fit the option's type (``threads="abc"``),
    is a ConfigError before the backend is constructed. Strings are converted where the option's
    type allows (``"4"`` for an integer, ``"true"`` for a flag), as ``-O KEY=VALUE`` gives them.
    """
    known = backend_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"backend {name!r} takes no option(s) {unknown}; its options are {known}")
    cls = backend_class(name)
    try:
        values = coerce_options(cls.__init__, options)
    except OptionError as error:
        raise ConfigError(f"backend {name!r}: {error}") from None
    return cls(model=model, **values)
