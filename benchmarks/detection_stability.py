"""Do boxes stay on moving content through non-key frames? Frame-to-frame box stability of DFF and copy on real video.

Runs a trained detector (``benchmarks/detection.py``'s of synthetic classes, or ``benchmarks/detection_real.py``'s,
trained on a real clip's own boxes) over a real clip with
Algorithm 1 at key frame duration l: key frames every l-th frame, non-key frames from f_k
propagated by F (``dff``) or reused unchanged (``copy``). Between each pair of consecutive frames
the confident boxes (score ≥ ``--score``) of one class are matched greedily by IoU (best first,
IoU > 0.1); the figure is the mean IoU of the matched boxes and the share of boxes matched,
apart for steps into a non-key frame and steps into a key frame. On real motion, copy's boxes
stand still through the non-key frames and jump at the next key frame; boxes that follow the
content move a little every step.

    nice python benchmarks/detection_stability.py ../shared/data/imagenet_vid_val_00007010 ../shared/data/videos/vtest.avi
    nice python benchmarks/detection_stability.py ../shared/data/videos/vtest.avi --model runs/detection-real/dff/model.safetensors \
        --frames 550:795 --score 0.5 --overlay /tmp/stability   # detection_real.py's walker detector on its held-out frames
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dff.data.pairs import image_tensor  # noqa: E402
from dff.detection.boxes import box_iou  # noqa: E402
from dff.detection.ground_truth import FrameBoxes  # noqa: E402
from dff.detection.head import Detections  # noqa: E402
from dff.detection.train import load_detector  # noqa: E402
from dff.models.preprocess import FrameNormalizer  # noqa: E402
from dff.sources import open_source  # noqa: E402

MODES = ("dff", "copy")


@dataclass(frozen=True)
class Stability:
    """Mean IoU of matched boxes and the share of boxes matched, for steps into key and into non-key frames."""

    key_iou: float
    key_matched: float
    non_key_iou: float
    non_key_matched: float
    #: Share of the confident boxes of key / non-key frames that have IoU >= 0.5 with a box of ``truth`` (nan without truth).
    key_on_truth: float = float("nan")
    non_key_on_truth: float = float("nan")


def matched_ious(a: Detections, b: Detections, *, min_iou: float = 0.1) -> tuple[list[float], int]:
    """Greedy one-to-one matching of same-class boxes by IoU; the matched IoUs and how many boxes could match."""
    ious: list[float] = []
    if len(a.boxes) and len(b.boxes):
        iou = box_iou(a.boxes, b.boxes) * (a.classes[:, None] == b.classes[None, :])
        while True:
            best = int(iou.argmax())
            row, column = divmod(best, iou.shape[1])
            if float(iou[row, column]) <= min_iou:
                break
            ious.append(float(iou[row, column]))
            iou[row, :] = 0
            iou[:, column] = 0
    return ious, max(len(a.boxes), len(b.boxes))


def frame_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """The frame resized so its short side is about ``short_side``, both sides multiples of 16."""
    scale = short_side / min(height, width)
    return max(16, round(height * scale / 16) * 16), max(16, round(width * scale / 16) * 16)


def frame_range(text: str) -> range:
    """``--frames``: ``N`` is the first N frames, ``START:END`` frames START … END − 1."""
    start, _, end = text.rpartition(":")
    try:
        frames = range(int(start or 0), int(end))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--frames must be N or START:END (frame indices), got {text!r}") from None
    if not (len(frames) >= 2):
        raise argparse.ArgumentTypeError(f"--frames must hold at least 2 frames, got {text!r}")
    return frames


def on_truth(found: Detections, truth: FrameBoxes) -> tuple[int, int]:
    """How many of ``found``'s boxes have IoU >= 0.5 with some box of ``truth`` (any class), and how many boxes there are."""
    if not (len(found.boxes) and len(truth.boxes)):
        return 0, len(found.boxes)
    return int((box_iou(found.boxes, torch.from_numpy(truth.boxes)).amax(dim=1) >= 0.5).sum()), len(found.boxes)


@torch.inference_mode()
def stability(
    model, source: str, *, mode: str, key_interval: int, short_side: int, score: float, mean, std, frames: range,
    overlay: Path | None = None, truth: Callable[[int], FrameBoxes] | None = None,
) -> Stability:
    """Key frames are the frames of ``frames`` whose index is a multiple of ``key_interval`` (and the first);
    ``truth(index)`` gives a frame's boxes at the network's frame size, for the share of boxes on them."""
    normalizer = FrameNormalizer(mean=mean, std=std)
    head = model.task_net
    previous: Detections | None = None
    steps: dict[bool, tuple[list[float], list[int]]] = {True: ([], []), False: ([], [])}
    hits: dict[bool, list[int]] = {True: [0, 0], False: [0, 0]}
    key_feat = key = None
    for frame in open_source(source):
        if frame.index >= frames.stop:
            break
        if frame.index < frames.start:
            continue
        height, width = frame_size(*frame.image.shape[:2], short_side)
        tensor = normalizer(image_tensor(cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA))[None])
        is_key = frame.index % key_interval == 0 or key_feat is None
        if is_key:
            key, key_feat = tensor, model.key(tensor)
            feat = key_feat
        else:
            feat = model.propagate(key_feat, key, tensor) if mode == "dff" else key_feat
        found = head.detect(model.task(feat))[0]
        confident = found.scores >= score
        found = Detections(boxes=found.boxes[confident], scores=found.scores[confident], classes=found.classes[confident])
        if truth is not None:
            for n, count in enumerate(on_truth(found, truth(frame.index))):
                hits[is_key][n] += count
        if previous is not None:
            ious, boxes = matched_ious(previous, found)
            steps[is_key][0].extend(ious)
            steps[is_key][1].extend([len(ious), boxes])
        previous = found
        if overlay is not None:
            draw(overlay / f"{Path(source).stem}_{mode}_{frame.index:04d}.png", frame.image, found, (height, width), is_key)

    def summary(is_key: bool) -> tuple[float, float]:
        ious, counts = steps[is_key]
        matched, boxes = sum(counts[0::2]), sum(counts[1::2])
        return (float(np.mean(ious)) if ious else float("nan")), (matched / boxes if boxes else float("nan"))

    (key_iou, key_matched), (non_key_iou, non_key_matched) = summary(True), summary(False)
    share = {is_key: (on / boxes if truth is not None and boxes else float("nan")) for is_key, (on, boxes) in hits.items()}
    return Stability(
        key_iou=key_iou, key_matched=key_matched, non_key_iou=non_key_iou, non_key_matched=non_key_matched,
        key_on_truth=share[True], non_key_on_truth=share[False],
    )


def draw(path: Path, image: np.ndarray, found: Detections, size: tuple[int, int], is_key: bool) -> None:
    """The frame with its boxes (scaled back from the network's size) and scores; key frames framed in white."""
    picture = image.copy()
    scale = np.array([image.shape[1] / size[1], image.shape[0] / size[0]] * 2)
    for box, box_score in zip(found.boxes.numpy() * scale, found.scores.numpy()):
        x1, y1, x2, y2 = box.astype(int)
        cv2.rectangle(picture, (x1, y1), (x2, y2), (0, 255, 255), 2)
        cv2.putText(picture, f"{box_score:.2f}", (x1, max(12, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
    if is_key:
        cv2.rectangle(picture, (0, 0), (image.shape[1] - 1, image.shape[0] - 1), (255, 255, 255), 6)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".tmp.png")
    cv2.imwrite(str(partial), picture)
    partial.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="+", help="video files or frame folders")
    parser.add_argument("--model", default=str(REPO / "runs" / "detection" / "seed0" / "dff" / "model.safetensors"))
    parser.add_argument("--key-interval", type=int, default=10)
    parser.add_argument("--short-side", type=int, default=192, help="frames are resized so their short side is about this")
    parser.add_argument("--score", type=float, default=0.5, help="boxes below this score are left out")
    parser.add_argument("--frames", type=frame_range, default=range(150), help="N: the first N frames of each source; START:END: frames START … END − 1")
    parser.add_argument("--overlay", type=Path, help="write each frame with its boxes here as PNG")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, config = load_detector(args.model)
    print(f"model {args.model}, l = {args.key_interval}, short side {args.short_side}, score >= {args.score}")
    print("| source | mode | key: mean IoU | key: matched | non-key: mean IoU | non-key: matched |")
    print("|---|---|---|---|---|---|")
    for source in args.sources:
        for mode in MODES:
            s = stability(
                model, source, mode=mode, key_interval=args.key_interval, short_side=args.short_side, score=args.score,
                mean=config.mean, std=config.std, frames=args.frames, overlay=args.overlay,
            )
            print(f"| {Path(source).name} | {mode} | {s.key_iou:.3f} | {s.key_matched:.2f} | {s.non_key_iou:.3f} | {s.non_key_matched:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
