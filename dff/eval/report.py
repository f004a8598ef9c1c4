"""Table 4 as text and as JSON: mIoU for segmentation, mAP@0.5 for detection."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from dff.detection.evaluate import DetectionResult
from dff.eval.protocol import ModeResult

#: Names of the modes as Table 3 calls them.
TITLES = {"frame": "Frame", "dff": "DFF", "copy": "copy (f_i = f_k)", "sff": "SFF (DIS flow)"}


def _accuracy(result: ModeResult | DetectionResult) -> tuple[str, float]:
    """The column head and the figure of a row: the task's accuracy measure."""
    if isinstance(result, DetectionResult):
        return "mAP@0.5 (%)", result.mean_ap
    return "mIoU (%)", result.miou


def table(results: Sequence[ModeResult | DetectionResult]) -> str:
    """One row per mode: mIoU or mAP (%), frames per second, key and non-key frame times, pairs evaluated."""
    header = ("method", "l", _accuracy(results[0])[0], "fps", "key ms", "non-key ms", "pairs")
    rows = [
        (
            TITLES.get(r.mode, r.mode),
            str(r.key_interval),
            f"{100 * _accuracy(r)[1]:.1f}",
            f"{r.fps:.1f}",
            f"{r.key_ms:.2f}",
            "-" if r.non_key_ms is None else f"{r.non_key_ms:.2f}",
            str(r.pairs),
        )
        for r in results
    ]
    widths = [max(len(row[c]) for row in (header, *rows)) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))) for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(results: Sequence[ModeResult | DetectionResult], *, class_names: Sequence[str]) -> str:
    """Every result with its per-class figure keyed by class name: IoU (null for a class absent from labels and
    predictions), or AP of the object classes (the background has none; null for a class without ground truth)."""
    rows = []
    for result in results:
        row = dataclasses.asdict(result)
        if isinstance(result, DetectionResult):
            row["class_ap"] = dict(zip(class_names[1:], result.class_ap))
        else:
            row["class_iou"] = dict(zip(class_names, result.class_iou))
        rows.append(row)
    return json.dumps({"results": rows}, indent=2)
