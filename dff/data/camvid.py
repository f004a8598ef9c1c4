"""CamVid-style folders: ``<root>/images/<name>.jpg|png`` and, for some or all frames, ``<root>/labels/<name>.png``.

Labels are 8-bit single-channel PNGs of class ids 0..10 (:data:`CAMVID_CLASSES`) and 11 for void,
which becomes IGNORE_INDEX (255). Frames are grouped into sequences by their name without its
trailing number (``0016E5_07959`` belongs to ``0016E5_``), then put in natural order of that
number. Frame offsets count files, not source frames: in the SegNet release the frames of a
sequence are 2 source frames apart, so an offset of 1 there is 1/15 s.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from dff.data import DatasetError
from dff.data.sequence import FileSequence, label_lookup
from dff.sources import IMAGE_EXTENSIONS, natural_key

CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
)  # fmt: skip
CAMVID_VOID = 11

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d*)$")


def camvid_sequences(
    root: str | Path,
    *,
    image_dir: str = "images",
    label_dir: str = "labels",
    class_names: tuple[str, ...] = CAMVID_CLASSES,
    void: int = CAMVID_VOID,
) -> list[FileSequence]:
    """The sequences under ``root``; label values must be below ``len(class_names)`` or equal ``void``."""
    root = Path(root)
    images_path, labels_path = root / image_dir, root / label_dir
    for folder in (images_path, labels_path):
        if not folder.is_dir():
            raise DatasetError(f"CamVid folder {folder} does not exist: expected {root}/{image_dir} and {root}/{label_dir}")
    images = sorted(
        (p for p in images_path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: natural_key(p.name)
    )
    if not images:
        raise DatasetError(f"CamVid folder {images_path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    labels = {p.stem: p for p in labels_path.iterdir() if p.suffix.lower() == ".png"}
    orphans = sorted(set(labels) - {p.stem for p in images})
    if orphans:
        raise DatasetError(f"labels without an image in {images_path}: {', '.join(labels[s].name for s in orphans[:5])}")

    groups: dict[str, list[Path]] = defaultdict(list)
    for path in images:
        groups[_TRAILING_NUMBER.match(path.stem).group(1)].append(path)  # type: ignore[union-attr]
    lookup = label_lookup(len(class_names), [void])
    return [
        FileSequence(
            name=f"CamVid {images_path / prefix}*",
            images=frames,
            labels={t: labels[p.stem] for t, p in enumerate(frames) if p.stem in labels},
            class_names=class_names,
            lookup=lookup,
        )
        for prefix, frames in groups.items()
    ]
