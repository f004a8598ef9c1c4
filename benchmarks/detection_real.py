"""Detectors of real moving objects for item 4, trained on real clips' boxes, and DFF against copy on held-out frames.

The synthetic-class detectors put their boxes on static content of real clips (black bars, grass),
so box stability on them says nothing about moving objects. With no pretrained weights, this
trains one detector per clip (``--data``) from scratch on that clip's boxes:

* ``vtest``: vtest.avi's walkers (static camera), **pseudo-boxes** from OpenCV's MOG2 background
  subtraction, shadows dropped, opened and closed, one box of class "mover" per connected region
  (:func:`dff.detection.mask_boxes.mask_boxes`). They miss people who stand still (they become
  background) and merge people who touch. Frames 50 … 549 train, 550 … 794 are held out.
* ``jets``: the ImageNet VID jets (moving camera), **pseudo-boxes** of the dark or saturated-red
  pixels inside the picture (the jets against the sky), class "jet". Frames 60 … 99 are held out,
  0 … 49 and 110 … 143 train.
* ``camvid``: CamVid 0016E5's labelled cars, pedestrians and bicyclists (exact labels, a box per
  connected region of each class; touching objects of a class merge). Frames 0 … 70 train, 71 … 100
  are held out.

*Frame* trains N on single training frames (F fixed), *DFF* starts from Frame's N and a
pre-trained F (``--flow``, benchmarks/detection.py's synthetic-video F) and trains everything on
pairs 0 ≤ i − k ≤ 9. On the held-out frames: mAP@0.5 against the held-out boxes by the paper's
protocol at l = 10 (frame, DFF, copy, SFF), then ``detection_stability.py``'s frame-to-frame
stability of DFF, copy and Frame at l = 1 with the share of boxes on a held-out box (IoU ≥ 0.5).

    nice python benchmarks/detection_real.py --flow runs/detection/video_flow/model.safetensors --overlay /tmp/real
    nice python benchmarks/detection_real.py --data jets --short-side 240 --flow ... --frame-steps 2000 --pair-steps 1000
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.detection import LR, MAX_OFFSET, THREADS, run_stage, settings, write_json  # noqa: E402
from benchmarks.detection_stability import frame_size, matched_ious, stability  # noqa: E402
from dff.config import ModelConfig  # noqa: E402
from dff.data.camvid import camvid_sequences  # noqa: E402
from dff.detection.evaluate import evaluate_detection  # noqa: E402
from dff.data.pairs import image_tensor  # noqa: E402
from dff.detection.ground_truth import AnnotatedFrames, FrameBoxes  # noqa: E402
from dff.detection.head import Detections  # noqa: E402
from dff.detection.mask_boxes import BoxedFrames, mask_boxes  # noqa: E402
from dff.detection.metrics import DetectionScore  # noqa: E402
from dff.detection.model import build_detection_model  # noqa: E402
from dff.detection.train import load_detector, train_detector  # noqa: E402
from dff.models.preprocess import FrameNormalizer  # noqa: E402
from dff.sources import open_source  # noqa: E402
from dff.train.parts import FLOW_PARTS, load_parts  # noqa: E402

KEY_INTERVAL = 10
#: MOG2 learns the background from the first frames; their masks are not used.
WARM_UP = 50
#: At the network's frame size: a pseudo-box must cover 60 pixels (~200 at vtest's 480×360) and be 6 high and wide.
MIN_PIXELS, MIN_SIDE = 60, 6


@dataclass(frozen=True)
class RealClip:
    """A clip's frames at the network's size, each frame's boxes, the frames that train and those held out."""

    name: str
    source: str  # what detection_stability.py reads: a video or a frame folder
    frames: list[np.ndarray]
    boxes: list[FrameBoxes]
    class_names: tuple[str, ...]
    train: tuple[range, ...]
    held_out: range

    def part(self, frames: range) -> BoxedFrames:
        return BoxedFrames(f"{self.name} {frames.start}:{frames.stop}", self.frames[frames.start : frames.stop],
                           self.boxes[frames.start : frames.stop], self.class_names)


def vtest_clip(source: str, short_side: int, train_end: int) -> RealClip:
    """vtest.avi with MOG2 pseudo-boxes of class "mover"; frames WARM_UP … ``train_end`` − 1 train."""
    frames, boxes = mog2_boxed_frames(source, short_side)
    return RealClip(Path(source).name, source, frames, boxes, ("background", "mover"), (range(WARM_UP, train_end),), range(train_end, len(frames)))


#: CamVid's road users (label values of :data:`dff.data.camvid.CAMVID_CLASSES`) and their class ids here.
CAMVID_OBJECTS = {"car": 8, "pedestrian": 9, "bicyclist": 10}


def camvid_clip(root: str, short_side: int, train_end: int) -> RealClip:
    """A CamVid folder's frames with a box per connected region of each road-user class (exact labels, moving camera)."""
    (sequence,) = camvid_sequences(root)
    frames, boxes = [], []
    for t in range(len(sequence)):
        image, label = sequence.image_and_label(t)
        height, width = frame_size(*image.shape[:2], short_side)
        small = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
        found = [mask_boxes(small == value, c, min_pixels=MIN_PIXELS, min_side=MIN_SIDE) for c, value in enumerate(CAMVID_OBJECTS.values(), 1)]
        frames.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
        boxes.append(FrameBoxes(boxes=np.concatenate([f.boxes for f in found]), classes=np.concatenate([f.classes for f in found])))
    return RealClip(
        Path(root).name, str(Path(root) / "images"), frames, boxes, ("background", *CAMVID_OBJECTS), (range(0, train_end),), range(train_end, len(frames))
    )


#: The jets clip: frames 60 … 99 held out, 10 frames apart from both training parts (the jets are apart there but
#: for one touching pair from about frame 80; from about frame 100 on most of them fly so close that their regions merge).
JETS_TRAIN, JETS_HELD_OUT = (range(0, 50), range(110, 144)), range(60, 100)


def jets_clip(root: str, short_side: int) -> RealClip:
    """The ImageNet VID jets with pseudo-boxes: dark or saturated-red pixels inside the picture (the jets against the sky)."""
    frames, boxes = [], []
    for frame in open_source(root):
        image = frame.image
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        # The jets are dark or saturated red; sky, cloud and smoke trails are bright or pale.
        mask = ((hsv[..., 2] < 110) | ((hsv[..., 1] > 120) & (hsv[..., 2] < 170))).astype(np.uint8)
        picture = np.nonzero(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).mean(axis=0) > 20)[0]
        mask[:, : picture[0] + 8] = 0  # the black pillarbox bars and the picture's dark edge
        mask[:, picture[-1] - 7 :] = 0
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        height, width = frame_size(*image.shape[:2], short_side)
        frames.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
        boxes.append(mask_boxes(cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST), 1, min_pixels=MIN_PIXELS, min_side=MIN_SIDE))
    return RealClip(Path(root).name, root, frames, boxes, ("background", "jet"), JETS_TRAIN, JETS_HELD_OUT)


def mog2_boxed_frames(source: str, short_side: int) -> tuple[list[np.ndarray], list[FrameBoxes]]:
    """Every frame of ``source`` resized to the network's size and its MOG2 foreground boxes (empty during the warm-up)."""
    subtractor = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=True)
    # Opening removes speckle; closing with a tall element joins a walker's head, body and legs into one region.
    open_element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    close_element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 11))
    frames, boxes = [], []
    for frame in open_source(source):
        height, width = frame_size(*frame.image.shape[:2], short_side)
        foreground = subtractor.apply(frame.image) > 200  # MOG2 marks shadows 127, foreground 255
        mask = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_OPEN, open_element)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, close_element)
        frames.append(cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA))
        small = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        found = mask_boxes(small, 1, min_pixels=MIN_PIXELS, min_side=MIN_SIDE)
        boxes.append(found if frame.index >= WARM_UP else FrameBoxes(boxes=np.zeros((0, 4), np.float32), classes=np.zeros(0, np.int64)))
    return frames, boxes


def scaled_frame_map(model, held_out: BoxedFrames, frames: range, mean, std) -> float:
    """mAP@0.5 of N on every frame's features times F's scale field of the frame with itself, N(f · S(I, I)): what a
    key frame gives if it takes the modulation that N, trained on propagated features W(f_k, M) · S, learned to expect.
    The runtime's key frames (Algorithm 1, line 9) use f itself."""
    normalizer = FrameNormalizer(mean=mean, std=std)
    head = model.eval().task_net
    score = DetectionScore(num_classes=head.num_classes)
    with torch.no_grad():
        for t in frames:
            x = normalizer(image_tensor(held_out.image(t))[None])
            _, scale = model.flow_net(x, x)
            found = head.detect(model.task(model.key(x) * scale))[0]
            truth = held_out.boxes(t)
            score.update(boxes=found.boxes.numpy(), scores=found.scores.numpy(), classes=found.classes.numpy(),
                         gt_boxes=truth.boxes, gt_classes=truth.classes)
    return score.mean_ap


def as_detections(truth: FrameBoxes) -> Detections:
    return Detections(boxes=torch.from_numpy(truth.boxes), scores=torch.ones(len(truth.boxes)), classes=torch.from_numpy(truth.classes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", choices=("vtest", "camvid", "jets"), default="vtest",
        help="vtest.avi's MOG2 pseudo-boxes, CamVid's labelled road users or the ImageNet VID jets' colour pseudo-boxes",
    )
    parser.add_argument("--source", help="the clip (default: the one --data names, under ../shared/data)")
    parser.add_argument("--flow", required=True, help="pre-trained F (benchmarks/detection.py's OUT/video_flow/model.safetensors)")
    parser.add_argument("--out", default=str(REPO / "runs" / "detection-real"))
    parser.add_argument("--train-end", type=int, help="vtest, camvid: frames before this train, later ones are held out (default 550, 71)")
    parser.add_argument("--short-side", type=int, default=192)
    parser.add_argument("--frame-steps", type=int, default=600, help="iterations of Frame (batch 4)")
    parser.add_argument("--pair-steps", type=int, default=300, help="iterations of DFF on pairs (batch 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--annotate-every", type=int, default=5, help="mAP on every n-th held-out frame (each with its l pairs)")
    parser.add_argument("--score", type=float, default=0.5, help="stability: boxes below this score are left out")
    parser.add_argument("--overlay", type=Path, help="write each held-out frame with its boxes here as PNG")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    out = Path(args.out)
    data = REPO.parent / "shared" / "data"
    if args.data == "vtest":
        clip = vtest_clip(args.source or str(data / "videos" / "vtest.avi"), args.short_side, args.train_end or 550)
    elif args.data == "camvid":
        clip = camvid_clip(args.source or str(data / "camvid_0016E5"), args.short_side, args.train_end or 71)
    else:
        clip = jets_clip(args.source or str(data / "imagenet_vid_val_00007010"), args.short_side)
    frames, boxes, class_names = clip.frames, clip.boxes, clip.class_names
    frames_held = clip.held_out
    train, held_out = [clip.part(r) for r in clip.train], clip.part(frames_held)
    print(f"{', '.join(map(str, train))} / {held_out}: frames at {frames[0].shape[1]}x{frames[0].shape[0]}, boxes per frame "
          f"{np.mean([len(b.boxes) for t in train for b in t.frame_boxes]):.1f} (train) "
          f"{np.mean([len(b.boxes) for b in held_out.frame_boxes]):.1f} (held out)", flush=True)
    config = ModelConfig(task="detection", feature="tiny", flow="tiny", num_classes=len(class_names), output_stride=8, class_names=class_names)
    torch.manual_seed(args.seed)
    frame_path = run_stage("Frame", out / "frame", lambda: train_detector(
        build_detection_model(config), sequences=train, settings=settings(out / "frame", args.frame_steps, LR["frame"], args.seed),
        model_config=config, max_offset=0, frozen_parts=("flow_net",),
    ))

    def from_frame():
        model, _ = load_detector(frame_path)
        load_parts(model, config, args.flow, FLOW_PARTS)
        return model

    dff_path = run_stage("DFF", out / "dff", lambda: train_detector(
        from_frame(), sequences=train, settings=settings(out / "dff", args.pair_steps, LR["pairs"], args.seed),
        model_config=config, max_offset=MAX_OFFSET, frozen_parts=(),
    ))
    frame_model, dff_model = load_detector(frame_path)[0], load_detector(dff_path)[0]
    # Every n-th held-out frame from the 10th on: each has its l = 10 pairs inside the held-out part.
    scored = range(KEY_INTERVAL - 1, len(held_out), args.annotate_every)
    annotated = [AnnotatedFrames(held_out, scored)]
    results = []
    print("| method | l | mAP@0.5 vs the held-out boxes (%) | pairs |\n|---|---|---|---|")
    methods = [
        ("Frame", frame_model, "frame", 1), ("DFF's N on every frame", dff_model, "frame", 1), ("DFF", dff_model, "dff", KEY_INTERVAL),
        ("copy (Frame's N)", frame_model, "copy", KEY_INTERVAL), ("copy (DFF's N)", dff_model, "copy", KEY_INTERVAL),
        ("SFF (DIS flow, DFF's N)", dff_model, "sff", KEY_INTERVAL),
    ]
    for method, model, mode, l in methods:
        r = evaluate_detection(model, annotated, mode=mode, key_interval=l, mean=config.mean, std=config.std)
        results.append({"method": method, **asdict(r)})
        print(f"| {method} | {r.key_interval} | {100 * r.mean_ap:.1f} | {r.pairs} |", flush=True)
    scaled = scaled_frame_map(dff_model, held_out, scored, config.mean, config.std)
    results.append({"method": "DFF's N on every frame, f x S(I, I)", "mean_ap": scaled})
    print(f"| DFF's N on every frame, f × S(I, I) | 1 | {100 * scaled:.1f} | {len(scored)} |", flush=True)
    print(f"\nstability over frames {frames_held.start}:{frames_held.stop}, l = {KEY_INTERVAL}, score >= {args.score}")
    print("| mode | into key: mean IoU | into key: matched | into non-key: mean IoU | into non-key: matched "
          "| key boxes on a held-out box | non-key boxes on a held-out box |\n|---|---|---|---|---|---|---|")
    rows = []
    # References: Frame's N on every frame (l = 1, every step into a key frame), and the boxes themselves.
    for mode, model, l in [("dff", dff_model, KEY_INTERVAL), ("copy", dff_model, KEY_INTERVAL), ("frame (l = 1)", frame_model, 1)]:
        s = stability(
            model, clip.source, mode=mode, key_interval=l, short_side=args.short_side, score=args.score,
            mean=config.mean, std=config.std, frames=frames_held, overlay=args.overlay if l > 1 else None, truth=lambda t: boxes[t],
        )
        rows.append({"mode": mode, **asdict(s)})
        print(f"| {mode} | {s.key_iou:.3f} | {s.key_matched:.2f} | {s.non_key_iou:.3f} | {s.non_key_matched:.2f} "
              f"| {s.key_on_truth:.2f} | {s.non_key_on_truth:.2f} |", flush=True)
    steps = [matched_ious(as_detections(boxes[t - 1]), as_detections(boxes[t])) for t in frames_held[1:]]
    truth_iou = float(np.mean([iou for ious, _ in steps for iou in ious]))
    truth_matched = sum(len(ious) for ious, _ in steps) / max(1, sum(count for _, count in steps))
    rows.append({"mode": "the boxes themselves", "iou": truth_iou, "matched": truth_matched})
    print(f"| the boxes themselves (every step) | {truth_iou:.3f} | {truth_matched:.2f} | | | | |", flush=True)
    write_json(out / "results.json", {"map": results, "stability": rows, "args": {k: str(v) for k, v in vars(args).items()}})
    print(json.dumps({"out": str(out / "results.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
