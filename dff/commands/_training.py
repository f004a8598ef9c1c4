"""What ``dff train`` and ``dff train-flow`` share: running a training and telling how it ended."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path


def report(training: Callable[[], Path], output_dir: str) -> int:
    """Run ``training``; rank 0 prints the model it wrote, or where an interrupted run can resume from."""
    from dff.train.loop import CHECKPOINT_NAME

    main_process = os.environ.get("RANK", "0") == "0"
    try:
        path = training()
    except KeyboardInterrupt:
        if main_process:
            checkpoint = Path(output_dir) / CHECKPOINT_NAME
            where = f"the last checkpoint {checkpoint} is intact; continue with --resume" if checkpoint.is_file() else "no checkpoint was written yet"
            print(f"interrupted: {where}", file=sys.stderr)
        return 130
    if main_process:
        print(f"wrote {path}")
    return 0
