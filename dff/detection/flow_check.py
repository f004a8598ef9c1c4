"""Did F learn the motion detection needs? M and S on the objects of the synthetic video against its exact flow.

For pairs (k, i) = (i − d, i) the true flow M_{i→k} (frame pixels, :meth:`SyntheticVideo.flow`) is
averaged over each s×s cell and divided by s, the units of F's M (feature cells; s is F's
``feature_stride``, 16 or 8). On the cells
that are mostly object (instances > 0 on at least half the pixels), where a detector's boxes come
from, we report the mean |M_true|, the mean |M| of F, their end-point error, and the mean |S − 1|
over all cells and channels. An F that learned nothing gives |M| ≈ 0 and EPE ≈ |M_true| (copying).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dff.data.pairs import image_tensor
from dff.data.synthetic import SyntheticVideo
from dff.models import DeepFeatureFlow
from dff.models.preprocess import FrameNormalizer
from dff.train.feature_flow import feature_flow

@dataclass(frozen=True, kw_only=True)
class FlowOnObjects:
    """Means over the object cells of the pairs checked; flows in feature cells."""

    offset: int
    cells: int
    true_motion: float
    predicted_motion: float
    end_point_error: float
    scale_deviation: float


def true_cell_flow(video: SyntheticVideo, *, current: int, key: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact M_{i→k} averaged per feature cell of ``stride`` pixels, in cells (2, h, w), and the bool (h, w) cells
    that are mostly object."""
    flow = torch.from_numpy(video.flow(current=current, key=key)).permute(2, 0, 1)[None]
    objects = torch.from_numpy((video.instances(current) > 0).astype(np.float32))[None, None]
    return feature_flow(flow, stride=stride)[0].numpy(), (F.avg_pool2d(objects, stride)[0, 0] >= 0.5).numpy()


@torch.inference_mode()
def flow_on_objects(
    model: DeepFeatureFlow, videos: Sequence[SyntheticVideo], *, offset: int, frames: Sequence[int], normalizer: FrameNormalizer
) -> FlowOnObjects:
    """F of ``model`` on pairs (i − ``offset``, i) for i in ``frames`` of each video (i − offset ≥ 0)."""
    if not (offset >= 1):
        raise ValueError(f"offset must be >= 1 frame, got {offset}")
    model = model.eval()
    true, predicted, error, scale = [], [], [], []
    for video in videos:
        for i in frames:
            k = i - offset
            if k < 0 or i >= len(video):
                continue
            key, current = (normalizer(image_tensor(video.image(t))[None]) for t in (k, i))
            flow, s = model.flow_net(key, current)
            cell_flow, objects = true_cell_flow(video, current=i, key=k, stride=model.flow_net.feature_stride)
            m = flow[0].numpy()[:, objects]
            m_true = cell_flow[:, objects]
            true.append(np.linalg.norm(m_true, axis=0))
            predicted.append(np.linalg.norm(m, axis=0))
            error.append(np.linalg.norm(m - m_true, axis=0))
            scale.append(float((s - 1).abs().mean()))
    if not scale:
        raise ValueError(f"no pair (i - {offset}, i) fits the videos for frames {list(frames)}")
    true_all = np.concatenate(true)
    return FlowOnObjects(
        offset=offset,
        cells=len(true_all),
        true_motion=float(true_all.mean()) if len(true_all) else 0.0,
        predicted_motion=float(np.concatenate(predicted).mean()) if len(true_all) else 0.0,
        end_point_error=float(np.concatenate(error).mean()) if len(true_all) else 0.0,
        scale_deviation=float(np.mean(scale)),
    )


def stale_box_share(video: SyntheticVideo, *, offset: int, frames: Sequence[int], follow_motion: bool = False) -> float:
    """How hard the video is for copying: the share of objects of frame i whose box in frame i − ``offset``
    (the same object's, visible pixels, as :mod:`~dff.detection.ground_truth` boxes them) has IoU < 0.5
    with their box in i, or who were not visible there. Copy's boxes for those objects miss at mAP@0.5.

    ``follow_motion``: the key frame's box is first moved by the object's exact mean flow. What stays stale
    then is what no propagation that moves an object's features can mend: its visible box changing shape
    (occlusion, the frame's border) or an object not yet visible in the key frame."""
    stale = total = 0
    for i in frames:
        k = i - offset
        if k < 0 or i >= len(video):
            continue
        now, then = video.instances(i), video.instances(k)
        flow = video.flow(current=i, key=k) if follow_motion else None
        for instance in np.unique(now[now > 0]):
            total += 1
            mask = now == instance
            before = _box(then == instance)
            if before is not None and flow is not None:
                dx, dy = flow[mask].mean(axis=0)  # M_{i→k}: from frame i's pixels to their place in k
                before = (before[0] - dx, before[1] - dy, before[2] - dx, before[3] - dy)
            stale += before is None or _iou(_box(mask), before) < 0.5  # type: ignore[arg-type]
    if not total:
        raise ValueError(f"no object is visible in frames {list(frames)}")
    return stale / total


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    return None if len(xs) == 0 else (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


class ExactFlow(torch.nn.Module):
    """An F that knows the answer: for frames of ``videos`` it returns their exact M_{i→k} per feature cell and S = 1.

    With Frame's N it shows what perfect motion gives without joint training (occlusions and the
    blur of bilinear warping on ``feature_stride``-pixel cells remain). Frames are recognised by their normalised pixels.
    """

    def __init__(self, videos: Sequence[SyntheticVideo], *, normalizer: FrameNormalizer, channels: int, feature_stride: int) -> None:
        super().__init__()
        self.videos = list(videos)
        self.channels = channels
        self.feature_stride = feature_stride
        self.frames = {
            normalizer(image_tensor(video.image(t))[None]).numpy().tobytes(): (v, t) for v, video in enumerate(self.videos) for t in range(len(video))
        }

    def forward(self, key: torch.Tensor, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (v, k), (w, i) = (self.frames[frame.numpy().tobytes()] for frame in (key, current))
        if v != w:
            raise ValueError(f"the key frame is from video {v} but the current frame from video {w}")
        flow = torch.from_numpy(true_cell_flow(self.videos[v], current=i, key=k, stride=self.feature_stride)[0])[None]
        return flow, torch.ones(1, self.channels, *flow.shape[2:])
