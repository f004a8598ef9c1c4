"""Cityscapes video snippets: ``leftImg8bit_sequence`` frames with ``gtFine`` labels where they exist.

Layout under ``root`` (as the Cityscapes downloads unpack)::

    leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png

Each 30-frame snippet has one fine label, on its 20th frame. Labels hold the 19 train ids
(:data:`CITYSCAPES_CLASSES`) and 255 for ignored pixels. A run of consecutive frame numbers of one
``<city>_<seq>`` is one sequence, so pairs never straddle two snippets.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from dff.data import IGNORE_INDEX, DatasetError
from dff.data.sequence import FileSequence, label_lookup

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "terrain",
    "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

_FRAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit\.(png|jpg|jpeg)$", re.IGNORECASE)
_LABEL = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_gtFine_labelTrainIds\.png$")


def cityscapes_sequences(root: str | Path, *, split: str = "train") -> list[FileSequence]:
    """One sequence per run of consecutive frames of a ``<city>_<seq>`` in ``split``."""
    root = Path(root)
    frames_path = root / "leftImg8bit_sequence" / split
    labels_path = root / "gtFine" / split
    for folder in (frames_path, labels_path):
        if not folder.is_dir():
            raise DatasetError(
                f"Cityscapes folder {folder} does not exist: expected leftImg8bit_sequence/ and gtFine/ under {root}"
            )

    frames: dict[tuple[str, str], dict[int, Path]] = defaultdict(dict)
    for path in frames_path.glob("*/*"):
        match = _FRAME.match(path.name)
        if match:
            frames[match["city"], match["seq"]][int(match["frame"])] = path
    if not frames:
        raise DatasetError(f"Cityscapes folder {frames_path} holds no <city>/<city>_<seq>_<frame>_leftImg8bit.png frames")

    labels: dict[tuple[str, str, int], Path] = {}
    for path in labels_path.glob("*/*_gtFine_labelTrainIds.png"):
        match = _LABEL.match(path.name)
        if match:
            key = (match["city"], match["seq"], int(match["frame"]))
            if key[2] not in frames.get(key[:2], {}):
                frame = path.name.replace("_gtFine_labelTrainIds", "_leftImg8bit")
                raise DatasetError(f"label {path} has no frame {frame} in {frames_path}")
            labels[key] = path

    lookup = label_lookup(len(CITYSCAPES_CLASSES), [IGNORE_INDEX])
    sequences = []
    for (city, seq), by_number in sorted(frames.items()):
        numbers = sorted(by_number)
        runs, run = [], [numbers[0]]
        for number in numbers[1:]:
            if number != run[-1] + 1:
                runs.append(run)
                run = []
            run.append(number)
        runs.append(run)
        for run in runs:
            sequences.append(
                FileSequence(
                    name=f"Cityscapes {split}/{city}_{seq}_{run[0]:06d}..{run[-1]:06d}",
                    images=[by_number[n] for n in run],
                    labels={t: labels[city, seq, n] for t, n in enumerate(run) if (city, seq, n) in labels},
                    class_names=CITYSCAPES_CLASSES,
                    lookup=lookup,
                )
            )
    return sequences
