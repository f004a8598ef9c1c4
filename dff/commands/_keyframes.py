"""The key-frame options shared by ``dff run``, ``dff eval`` and ``dff bench``: ``--scheduler fixed|adaptive`` and its settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from dff.errors import ConfigError
from dff.runtime.scheduler import FixedInterval, KeyFrameScheduler


def add_arguments(parser: argparse.ArgumentParser, *, default: str | None = "fixed", extra_help: str = "") -> None:
    group = parser.add_argument_group("key frames (Algorithm 1, line 6)")
    group.add_argument(
        "--scheduler",
        choices=("fixed", "adaptive"),
        default=default,
        help="fixed: one key frame every l frames (the paper); adaptive: where propagation fails, within a budget "
        "(dff.runtime.adaptive.AdaptiveInterval)" + extra_help,
    )
    group.add_argument("--key-rate", type=float, help="adaptive: the share of key frames to spend (default 1/l)")
    group.add_argument("--max-interval", type=int, help="adaptive: key frames never further apart (default 2l)")
    group.add_argument("--decide", choices=("before", "after"), default="before", help="adaptive: decide before F on frame i "
                       "from frame i-1's signals (default), or after F from frame i's own (promoted frames pay for F)")
    group.add_argument(
        "--calibration",
        help="adaptive: key-frame calibration JSON (default: EXPORT_DIR/keyframes.json, written by "
        "`python -m dff.runtime.adaptive_calibration EXPORT_DIR`)",
    )


def refuse_adaptive_settings(args: argparse.Namespace) -> None:
    """A one-line error for an adaptive setting given without ``--scheduler adaptive``."""
    for flag, value in (("--key-rate", args.key_rate), ("--max-interval", args.max_interval), ("--calibration", args.calibration)):
        if value is not None:
            raise ConfigError(f"{flag} is an adaptive setting: add --scheduler adaptive, or leave {flag} out")


def scheduler_from_args(args: argparse.Namespace, interval: int, model: str | Path) -> KeyFrameScheduler:
    """The scheduler the options ask for; ``interval`` is -l, ``model`` the export (or checkpoint) given."""
    from dff.runtime.adaptive import CALIBRATION_NAME, AdaptiveInterval, load_calibration

    if not (interval >= 1):
        raise ConfigError(f"--key-interval must be >= 1, got {interval}")
    if args.scheduler == "fixed":
        refuse_adaptive_settings(args)
        return FixedInterval(interval)
    rate = args.key_rate if args.key_rate is not None else 1.0 / interval
    max_interval = args.max_interval if args.max_interval is not None else max(2 * interval, int(round(1 / rate)))
    model = Path(model)
    if args.calibration is None and not model.is_dir():
        raise ConfigError(f"--scheduler adaptive with a checkpoint ({model}) needs --calibration PATH (an export's keyframes.json)")
    path = Path(args.calibration) if args.calibration is not None else model / CALIBRATION_NAME
    flow_sha256 = None
    if model.is_dir():
        from dff.manifest import load_manifest

        flow_sha256 = load_manifest(model, verify=False).models.flow.sha256
    try:
        return AdaptiveInterval(rate=rate, max_interval=max_interval, calibration=load_calibration(path, flow_sha256=flow_sha256), decide=args.decide)
    except ValueError as error:
        raise ConfigError(f"--key-rate/--max-interval: {error}") from None
