"""The ``dff`` command.

Each sub-command lives in its own module under :mod:`dff.commands` and exposes
``register(subparsers)``; adding a command adds a file, it does not edit this one.
Heavy imports (torch, onnxruntime, TensorRT) happen inside the commands' handlers,
so ``dff --help`` is instant and works without them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from dff import __version__
from dff import commands
from dff.errors import DFFError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dff", description="Deep Feature Flow: train, export, build, run, compare.")
    parser.add_argument("--version", action="version", version=f"dff {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DFFError as error:
        # Expected user errors: one clear line, no traceback.
        print(f"dff {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
