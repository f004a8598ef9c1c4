"""The detection N_task as ``task.onnx`` holds it: f → final detections at frame scale, padded to a fixed count.

:class:`DetectionGraph` runs R-FCN's head (:class:`~dff.detection.head.RFCNTaskNet`) and then, in the
graph, everything :meth:`~dff.detection.head.RFCNTaskNet.detect` does on the host: anchors, proposal
decoding, the RPN's NMS at IoU 0.7, position-sensitive RoI average pooling, softmax, box decoding
and the per-class NMS at IoU 0.3. Outputs, for N frames and M = ``max_detections``:

* ``boxes`` (N, M, 4) float32, x1, y1, x2, y2 in pixels of the frame the network saw;
* ``detection_scores`` (N, M) float32, best first;
* ``classes`` (N, M) int32 in 1 … C;
* ``count`` (N,) int32: rows past ``count`` are padding (zeros).

Only standard ONNX that ONNX Runtime, OpenVINO and TensorRT's ONNX parser all take (onnx-tensorrt's
operator list): ``NonMaxSuppression`` (TensorRT's INMSLayer), ``TopK`` with a constant K (the parser
wants K as an initializer, so candidate lists are padded to K rather than cutting K to the list),
``CumSum`` on a constant axis, ``Gather``, ``Where``, ``Floor``/``Ceil`` and
``Min``/``Max``. The PS-RoI pooling is :func:`~dff.detection.psroi_pool.psroi_pool`'s integral image
(one CumSum per axis, then four Gathers per bin), traced as it is, so the export computes what
training computed: ``RoiAlign`` samples bilinearly and would not.

Frames of one batch never suppress each other: the per-class NMS runs with one NMS "class" per
(frame, class) pair, the boxes of other frames scored below the threshold.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from dff.detection.boxes import BoxCoder
from dff.detection.head import RFCN_CODER, RPN_CODER, RFCNMaps, RFCNTaskNet
from dff.detection.nms import nms
from dff.export.options import DEFAULT_MAX_DETECTIONS
from dff.manifest import BOXES, CLASSES, COUNT, DETECTION_SCORES, TensorSpec
#: Score given to candidates that must never be kept (padding, boxes too small, other frames' boxes).
_DROPPED = -1.0


class NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` (corners, per batch and class): the greedy NMS of :mod:`dff.detection.nms` when
    traced, one ONNX node in the export. Returns (K, 3) int64 rows (batch, class, box index)."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: Tensor, iou: Tensor, threshold: Tensor) -> Tensor:  # type: ignore[override]
        rows = [torch.zeros((0, 3), dtype=torch.long, device=boxes.device)]
        for b in range(boxes.shape[0]):
            for c in range(scores.shape[1]):
                candidates = torch.nonzero(scores[b, c] > threshold.to(scores.device)).flatten()
                kept = candidates[nms(boxes[b, candidates], scores[b, c, candidates], float(iou), max_kept=int(max_per_class))]
                rows.append(torch.stack((torch.full_like(kept, b), torch.full_like(kept, c), kept), dim=1))
        return torch.cat(rows)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou, threshold):  # type: ignore[no-untyped-def]
        return g.op("NonMaxSuppression", boxes, scores, max_per_class, iou, threshold)


def _nms(boxes: Tensor, scores: Tensor, max_per_class: int, iou: float, threshold: float) -> Tensor:
    return NonMaxSuppression.apply(
        boxes, scores, torch.tensor([max_per_class]), torch.tensor([iou]), torch.tensor([threshold])
    )


def _decode_clipped(coder: BoxCoder, deltas: Tensor, reference: Tensor, limits: Tensor) -> Tensor:
    """Decoded (n, 4) boxes clipped to [0, W] × [0, H]; ``limits`` = (W, H, W, H) as a tensor, so sizes stay dynamic."""
    return torch.minimum(coder.decode(deltas, reference).clamp(min=0.0), limits)


class DetectionGraph(nn.Module):
    """f (N, C, h, w) → (boxes, detection_scores, classes, count), padded to ``max_detections`` per frame."""

    def __init__(self, *, task_net: RFCNTaskNet, max_detections: int = DEFAULT_MAX_DETECTIONS) -> None:
        super().__init__()
        if not (max_detections >= 1):
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        self.task_net = task_net
        self.max_detections = max_detections
        self.register_buffer("cell_anchors", task_net.anchor_grid.cell_anchors().float(), persistent=False)

    def _anchors(self, height: Tensor, width: Tensor) -> Tensor:
        """(h·w·n_a, 4) anchors in float32, in AnchorGrid's order, from sizes that stay symbolic in the trace."""
        stride = float(self.task_net.feature_stride)
        device = self.cell_anchors.device
        xs = torch.arange(width, dtype=torch.float32, device=device) * stride + stride / 2
        ys = torch.arange(height, dtype=torch.float32, device=device) * stride + stride / 2
        cx = xs[None, :].expand(ys.shape[0], xs.shape[0])
        cy = ys[:, None].expand(ys.shape[0], xs.shape[0])
        centres = torch.stack((cx, cy, cx, cy), dim=-1).reshape(-1, 1, 4)
        return (centres + self.cell_anchors[None]).reshape(-1, 4)

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        net = self.task_net
        maps = self._maps(feat)
        n, _, height, width = maps.class_maps.shape
        stride = net.feature_stride
        # Sizes are tensors while tracing (so the export keeps them dynamic) and ints when run eagerly.
        sides = (torch.as_tensor(width * stride), torch.as_tensor(height * stride))
        limits = torch.stack(sides * 2).float()
        rois = self._proposals(maps, height, width, limits)
        logits, deltas = net.classify(maps, rois)
        boxes = _decode_clipped(RFCN_CODER, deltas, rois[:, 1:], limits)
        return self._detections(n, rois[:, 0].long(), logits.softmax(dim=1)[:, 1:], boxes)

    def _maps(self, feat: Tensor) -> RFCNMaps:
        """RFCNTaskNet.forward with the halves split at a constant channel: the traced ``chunk`` computes the split
        from the input's shape, which ONNX shape inference cannot follow (dff bench counts MACs from shapes).
        ``dff check`` compares the result with the head's own ``detect``, so a change to the head shows there."""
        net = self.task_net
        rpn_feat, rfcn_feat = torch.split(feat, [net.in_channels // 2] * 2, dim=1)
        maps = (net.rpn_objectness(rpn_feat), net.rpn_deltas(rpn_feat), net.rfcn_classes(rfcn_feat), net.rfcn_boxes(rfcn_feat))
        return RFCNMaps(*(m.float() for m in maps))  # the per-region stage runs in float32

    def _proposals(self, maps: RFCNMaps, height: Tensor, width: Tensor, limits: Tensor) -> Tensor:
        """(R, 5) rois (frame index, x1, y1, x2, y2): the RPN's best ``pre_nms_top_n``, NMS at its IoU, ``post_nms_top_n`` per frame."""
        net, config = self.task_net, self.task_net.proposal
        logits, deltas = net.rpn_outputs(maps)
        n = logits.shape[0]
        anchors = self._anchors(height, width)
        objectness = logits.softmax(dim=2)[..., 1]
        boxes = _decode_clipped(RPN_CODER, deltas.reshape(-1, 4), anchors.repeat(n, 1), limits).reshape(n, -1, 4)
        sides = boxes[..., 2:] - boxes[..., :2]
        big = (sides >= config.min_size).all(dim=2) & (sides.prod(dim=2) > 0)
        scores = torch.where(big, objectness, torch.full_like(objectness, _DROPPED))
        # Padded so that TopK's K is a constant even when the grid has fewer anchors.
        top = config.pre_nms_top_n
        scores = torch.cat((scores, torch.full_like(scores[:, :1], _DROPPED).expand(n, top)), dim=1)
        boxes = torch.cat((boxes, torch.zeros_like(boxes[:, :1]).expand(n, top, 4)), dim=1)
        best_scores, best = scores.topk(top, dim=1)
        # A flat Gather, not GatherElements: onnx.reference implements the latter with np.choose (at most 64 rows).
        rows = best + (torch.arange(n, device=best.device) * boxes.shape[1])[:, None]
        best_boxes = boxes.reshape(-1, 4)[rows.reshape(-1)].reshape(n, top, 4)
        kept = _nms(best_boxes, best_scores[:, None], config.post_nms_top_n, config.nms_iou, 0.0)
        frame = kept[:, 0]
        chosen = best_boxes.reshape(-1, 4)[frame * top + kept[:, 2]]
        return torch.cat((frame[:, None].float(), chosen), dim=1)

    def _detections(self, n: Tensor, frame: Tensor, scores: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per-class NMS per frame, then each frame's best ``max_detections``, padded."""
        config, m = self.task_net.detection, self.max_detections
        classes = scores.shape[1]
        frames = torch.arange(n, device=boxes.device)
        mine = frame[None, :] == frames[:, None]  # (N, R)
        # NMS "class" f·C + c holds class c's scores of frame f's regions; other frames' regions are dropped.
        pair_scores = torch.where(mine[:, None, :], scores.t()[None], torch.full_like(scores.t()[None], _DROPPED))
        pair_scores = pair_scores.reshape(1, -1, scores.shape[0])
        kept = _nms(boxes[None], pair_scores, min(m, config.max_detections), config.nms_iou, config.score_threshold)
        pair, region = kept[:, 1], kept[:, 2]
        kept_scores = pair_scores.reshape(-1)[pair * scores.shape[0] + region]
        kept_frame = torch.div(pair, classes, rounding_mode="floor")
        kept_class = pair - kept_frame * classes + 1
        # Each frame's best m of what NMS kept; m padding columns make K constant.
        ranked = torch.where(kept_frame[None, :] == frames[:, None], kept_scores[None], torch.full_like(kept_scores[None], _DROPPED))
        # (Padding built from tensors that are never empty, so that a trace with no detections still exports.)
        ranked = torch.cat((ranked, torch.full_like(frames[:, None], _DROPPED, dtype=ranked.dtype).expand(-1, m)), dim=1)
        best_scores, best = ranked.topk(m, dim=1)
        # The head's own cap (DetectionConfig.max_detections) holds too when the export has more rows.
        cap = torch.arange(m, device=boxes.device) < config.max_detections
        valid = (best_scores > _DROPPED) & cap[None]
        flat = best.reshape(-1)
        padded_boxes = torch.cat((boxes[region], torch.zeros(m, 4, dtype=boxes.dtype, device=boxes.device)))
        padded_classes = torch.cat((kept_class, torch.zeros(m, dtype=kept_class.dtype, device=boxes.device)))
        out_boxes = torch.where(valid[..., None], padded_boxes[flat].reshape(-1, m, 4), torch.zeros_like(padded_boxes[:1])[None])
        out_scores = torch.where(valid, best_scores, torch.zeros_like(best_scores))
        out_classes = torch.where(valid, padded_classes[flat].reshape(-1, m), torch.zeros_like(best))
        return out_boxes, out_scores, out_classes.int(), valid.sum(dim=1).int()


def detection_outputs(max_detections: int) -> tuple[TensorSpec, ...]:
    """The manifest's description of :class:`DetectionGraph`'s outputs."""
    m = max_detections
    return (
        TensorSpec(name=BOXES, dtype="float32", shape=("N", m, 4)),
        TensorSpec(name=DETECTION_SCORES, dtype="float32", shape=("N", m)),
        TensorSpec(name=CLASSES, dtype="int32", shape=("N", m)),
        TensorSpec(name=COUNT, dtype="int32", shape=("N",)),
    )


def pin_detection_rows(path: Path, max_detections: int) -> None:
    """Write M into the outputs' row dimension of the exported file: the tracer cannot see that TopK's K fixes it."""
    model = onnx.load(path)
    for output in model.graph.output:
        if output.name != COUNT:
            output.type.tensor_type.shape.dim[1].dim_value = max_detections
    onnx.save(model, path)
