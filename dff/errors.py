"""Errors the user can act on. Their message names the problem and the fix."""


class DFFError(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class CheckpointError(DFFError, ValueError):
    """A checkpoint is missing, truncated, corrupt or does not match its configuration."""


class ConfigError(DFFError, ValueError):
    """A configuration has an unknown key or a value out of range."""


class InputSizeError(DFFError, ValueError):
    """A frame size the networks cannot take."""


class ExportError(DFFError):
    """An export directory is missing, corrupt, or cannot be written."""


class VideoError(DFFError):
    """A video or frame source cannot be opened or read."""


class OutputError(DFFError):
    """An output cannot be written: a missing or unwritable folder, a full disk, a path that is in the way."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs (temporary files removed)."""


def interrupt_cause(interrupt: BaseException) -> str:
    """What stopped a run, in words: ``SIGTERM`` or ``Ctrl-C``."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"


def interrupt_status(interrupt: BaseException) -> int:
    """The exit status of a run stopped by ``interrupt``: 128 + the signal number, as a shell reports it."""
    return 143 if isinstance(interrupt, Terminated) else 130
