"""Device memory of the TensorRT backend: a pool of blocks in size classes, the tensors (handles) in them, and
per-frame views of batch tensors.

A handle's block goes back to the pool when the handle is dropped and is reused by a later tensor
of its size class; on one CUDA stream that later tensor is written only after the work that read
the block. Idle blocks are kept up to the bytes in use (at least ``idle_floor``), the least
recently wanted size classes freed first, so a change of frame size or batch size does not keep
every size ever seen allocated; an allocation that fails frees every idle block and tries once more. The pool frees only inside :meth:`DevicePool.take` and
:meth:`DevicePool.close`, after synchronising the device, never from a handle's finalizer, which
can run at any moment (during a CUDA graph capture, where ``cudaFree`` is not allowed).

The allocator is passed in (``cudaMalloc``/``cudaFree`` for the backend), so the pool's policy is
the same code whatever memory it manages.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import numpy as np

#: Idle bytes kept even when less is in use: the blocks of one small frame's stages.
IDLE_FLOOR = 64 << 20
_MIN_BLOCK = 512


def size_class(nbytes: int) -> int:
    """The block size serving ``nbytes``: rounded up to an eighth of the power of two below it (at most 1/8 wasted)."""
    nbytes = max(nbytes, _MIN_BLOCK)
    step = max(_MIN_BLOCK, (1 << (nbytes.bit_length() - 1)) // 8)
    return -(-nbytes // step) * step


class DevicePool:
    """Blocks from ``allocate(nbytes) -> address``, returned by handles and reused by size class; thread-safe."""

    def __init__(
        self,
        allocate: Callable[[int], int],
        free: Callable[[int], None],
        synchronize: Callable[[], None],
        *,
        idle_floor: int = IDLE_FLOOR,
    ) -> None:
        self._allocate = allocate
        self._free = free
        self._synchronize = synchronize
        self.idle_floor = idle_floor
        self._lock = threading.Lock()
        self._idle: dict[int, list[int]] = {}  # size class -> addresses, most recently returned last
        self._owned: dict[int, int] = {}  # address -> size class, every block allocated and not yet freed
        self._wanted: dict[int, int] = {}  # size class -> tick of the last take()
        self._tick = 0
        self.live_bytes = 0
        self.idle_bytes = 0
        self.closed = False

    @property
    def allocated_bytes(self) -> int:
        return self.live_bytes + self.idle_bytes

    def take(self, nbytes: int) -> tuple[int, int]:
        """(address, size class) of a block for ``nbytes``: an idle one of its class, else a new one."""
        block = size_class(nbytes)
        with self._lock:
            if self.closed:
                raise RuntimeError("the device pool is closed")
            self._tick += 1
            self._wanted[block] = self._tick
            idle = self._idle.get(block)
            if idle:
                pointer = idle.pop()
                self.idle_bytes -= block
                self.live_bytes += block
                return pointer, block
            self._trim_locked(max(self.live_bytes, self.idle_floor))
        try:
            pointer = self._allocate(block)
        except Exception:  # out of memory: free every idle block and try once more
            with self._lock:
                self._trim_locked(0)
            pointer = self._allocate(block)
        with self._lock:
            self._owned[pointer] = block
            self.live_bytes += block
        return pointer, block

    def give_back(self, block: int, pointer: int) -> None:
        """Called when a handle is dropped (a weakref finalizer): the block becomes idle. Never frees."""
        with self._lock:
            if self._owned.get(pointer) != block:  # the pool was closed since
                return
            self._idle.setdefault(block, []).append(pointer)
            self.live_bytes -= block
            self.idle_bytes += block

    def _trim_locked(self, limit: int) -> None:
        """Free idle blocks beyond ``limit`` bytes, the least recently wanted size classes first."""
        if self.idle_bytes <= limit:
            return
        self._synchronize()  # work in flight may still read an idle block
        for block in sorted(self._idle, key=lambda b: self._wanted.get(b, 0)):
            blocks = self._idle[block]
            while blocks and self.idle_bytes > limit:
                pointer = blocks.pop(0)
                self._free(pointer)
                del self._owned[pointer]
                self.idle_bytes -= block
            if self.idle_bytes <= limit:
                break
        self._idle = {b: blocks for b, blocks in self._idle.items() if blocks}

    def close(self) -> None:
        """Free every block, live or idle (after synchronising); later give_back() calls do nothing."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._owned:
                self._synchronize()
            for pointer in self._owned:
                self._free(pointer)
            self._owned.clear()
            self._idle.clear()
            self.live_bytes = self.idle_bytes = 0


class DeviceTensor:
    """A handle: a tensor in a pooled device block, returned to the pool when the handle is dropped."""

    __slots__ = ("pointer", "shape", "dtype", "nbytes", "__weakref__")

    def __init__(self, pool: DevicePool, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.pointer, block = pool.take(self.nbytes)
        weakref.finalize(self, pool.give_back, block, self.pointer)

    def __repr__(self) -> str:
        return f"DeviceTensor(shape={self.shape}, dtype={self.dtype.name}, pointer={self.pointer:#x})"


class DeviceSlice:
    """A handle to item ``index`` of a batch tensor: a view that keeps the whole batch's block alive."""

    __slots__ = ("pointer", "shape", "dtype", "nbytes", "base")

    def __init__(self, base: DeviceTensor, index: int, count: int = 1) -> None:
        item = base.nbytes // base.shape[0]
        self.base = base
        self.shape = (count, *base.shape[1:])
        self.dtype = base.dtype
        self.nbytes = item * count
        self.pointer = base.pointer + index * item

    def __repr__(self) -> str:
        return f"DeviceSlice(shape={self.shape}, dtype={self.dtype.name}, pointer={self.pointer:#x})"


def split(batch: DeviceTensor) -> list[DeviceSlice]:
    """One view per item of ``batch`` (N, ...), each of shape (1, ...)."""
    return [DeviceSlice(batch, index) for index in range(batch.shape[0])]


def contiguous_run(items: list[DeviceTensor | DeviceSlice]) -> DeviceSlice | None:
    """The batch view the items already form (consecutive views of one batch, in order), or None."""
    first = items[0]
    if not isinstance(first, DeviceSlice) or any(
        not isinstance(item, DeviceSlice) or item.base is not first.base or item.pointer != first.pointer + i * first.nbytes
        for i, item in enumerate(items)
    ):
        return None
    return DeviceSlice(first.base, (first.pointer - first.base.pointer) // first.nbytes, len(items))
