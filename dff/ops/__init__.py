"""Parameter-free operations of Deep Feature Flow."""

from dff.ops.warp import warp, warp_reference

__all__ = ["warp", "warp_reference"]
