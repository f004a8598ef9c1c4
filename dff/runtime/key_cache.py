"""What a CPU backend computes once per key frame and reads on every frame propagated from it.

The runtimes keep their key frame's handles (Algorithm 1's I_k and f_k) and pass them to every propagation after it;
a backend's handles (``OrtValue``, ``ov.Tensor``) compare and hash by identity and take weak references, so a value
derived from one (F's key-frame half of conv1, :mod:`dff.runtime.key_flow_half`; the key features as the warp's rows,
:mod:`dff.runtime.gather_sample`) can be kept exactly as long as the runtime holds that handle.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any


class KeyCache:
    """Values derived from key handles, each computed once and kept while its handle lives. ``compute``: handles →
    their values, in one engine call where the backend batches. Safe for the pipelined runtime's threads (two may
    compute one value; either is kept)."""

    def __init__(self, compute: Callable[[list[Any]], Sequence[Any]]) -> None:
        self._compute = compute
        self._values: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def of(self, handles: Sequence[Any]) -> list[Any]:
        """The values of ``handles``, in order."""
        with self._lock:
            missing = [handle for handle in dict.fromkeys(handles) if handle not in self._values]
        if missing:
            values = self._compute(missing)
            with self._lock:
                self._values.update(zip(missing, values))
        with self._lock:
            return [self._values[handle] for handle in handles]
