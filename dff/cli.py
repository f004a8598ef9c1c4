"""The ``dff`` command.

Each sub-command lives in its own module under :mod:`dff.commands` and exposes
``register(subparsers)``; adding a command adds a file, it does not edit this one.
Heavy imports (torch, onnxruntime, TensorRT) happen inside the commands' handlers,
so ``dff --help`` is instant and works without them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading
import warnings
from collections.abc import Callable

# OpenCV and FFmpeg print their own log lines (decoder complaints, writer warnings) among ours, and dff reports
# what matters itself (skipped frames, a video that ended early, a failed write). Set before cv2 is imported;
# a user's own setting wins.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

from dff import __version__
from dff import commands
from dff.errors import DFFError, Terminated, interrupt_cause, interrupt_status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dff", description="Deep Feature Flow: train, export, build, run, compare.")
    parser.add_argument("--version", action="version", version=f"dff {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _one_line_warning(command: str) -> Callable[..., None]:
    """Warnings printed as ``dff COMMAND: warning: ...``, above the progress bar, not as a library's file and line."""

    def show(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None, line: object = None
    ) -> None:
        from tqdm import tqdm

        tqdm.write(f"dff {command}: warning: {message}", file=sys.stderr)

    return show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (timeout, kill, container runtimes) unwinds like Ctrl-C, so every context manager that
    # holds a temporary file removes it and earlier outputs stay as they were.
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return int(args.handler(args) or 0)
    except DFFError as error:
        # Expected user errors: one clear line, no traceback.
        print(f"dff {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        cause = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
        print(
            f"dff {args.command}: {cause} ({interrupt_cause(interrupt)}); unfinished outputs removed, earlier files kept",
            file=sys.stderr,
        )
        return interrupt_status(interrupt)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
