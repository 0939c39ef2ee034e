"""Training losses for :class:`~avdetect.models.detector.AVDetector` (kept out of ``forward``).

Terms (weights in :class:`~avdetect.models.config.LossWeights`):

* ``clip``: BCE of the real/fake logit; ``category``: cross-entropy over the four
  categories of :data:`avdetect.vocab.CATEGORIES` (label ``-1`` = unknown, ignored);
* ``frame_visual`` / ``frame_audio`` / ``frame_fused``: per-frame BCE, averaged over frames
  where the label is known and the modality is present (``visual_mask``/``audio_mask``/
  ``frame_mask`` from the output);
* ``boundary``: BCE of start/end logits against Gaussian bumps around true segment edges,
  positives up-weighted by ``boundary_pos_weight``;
* ``offsets``: 1-D IoU loss (ActionFormer) between predicted and true distances to the
  segment start/end, on frames inside fake segments;
* ``sync``: cross-entropy of the offset logits against the applied audio shift (0 unless
  the loader shifted the audio: audio delayed by ``s`` frames -> target offset ``+s``), on
  frames where both modalities are present and real.

Every masked mean divides by ``max(count, 1)``: an empty mask gives a zero that still
belongs to the graph, never a NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avdetect.models.config import LossWeights
from avdetect.models.detector import DetectorOutput
from avdetect.vocab import category_index


@dataclass
class DetectorTargets:
    """Per-clip and per-frame training targets on the 25 Hz grid."""

    clip_label: torch.Tensor  # (B,) float, 1 = fake
    category: torch.Tensor  # (B,) long index into avdetect.vocab.CATEGORIES, -1 = unknown
    frame_visual: torch.Tensor  # (B, T) float, 1 = visual manipulated
    frame_audio: torch.Tensor  # (B, T) float, 1 = audio manipulated
    frame_fused: torch.Tensor  # (B, T) float, 1 = either manipulated
    boundary: torch.Tensor  # (B, T, 2) float in [0, 1], soft start / end targets
    offsets: torch.Tensor  # (B, T, 2) float, frames to the fused segment start / end (inside segments)
    label_mask: torch.Tensor  # (B, T) bool, frames whose labels are known (False on padding and on fakes without segments)
    sync_offset: torch.Tensor  # (B,) long, audio shift applied by the loader (frames)

    def to(self, device) -> "DetectorTargets":
        return DetectorTargets(**{k: v.to(device) for k, v in self.__dict__.items()})

    @classmethod
    def from_segments(cls, n_frames: int, visual_segments: list[list[tuple[int, int]]],
                      audio_segments: list[list[tuple[int, int]]], *, category: list[int | None] | None = None,
                      lengths: list[int] | None = None, sync_offset: list[int] | None = None,
                      clip_label: list[float | None] | None = None, frames_known: list[bool] | None = None,
                      sigma: float = 1.0) -> "DetectorTargets":
        """Build targets for a batch from fake segments given as half-open frame ranges.

        ``visual_segments[b]`` / ``audio_segments[b]``: ``[(start, end), ...]`` frames
        ``start <= f < end`` manipulated in that modality (convert seconds with
        :mod:`avdetect.timegrid`). The fused segments are their union. Segments may reach
        outside ``[0, n_frames)`` (a window that cuts a segment): frame labels are clipped to
        the window, but distances and boundary bumps refer to the true edges, so a window
        never teaches a "start" where the fake merely enters the window. ``lengths[b]``:
        valid frames of clip ``b`` (default ``n_frames``). ``category`` defaults to the one
        implied by which modalities have segments inside the window (also for its None entries).

        A fake clip whose segments are unknown (FakeAVCeleb without durations, a clip whose
        duration probe failed, a modification flag without segments) is given with
        ``frames_known[b] = False`` and ``clip_label[b] = 1``: its frames carry no label
        (``label_mask`` is False, so the frame, boundary, offset and sync terms skip them) while
        the clip term still trains it as fake. ``clip_label[b]`` (None: from the segments, the
        default) overrides the window's clip label.
        """
        batch = len(visual_segments)
        if len(audio_segments) != batch:
            raise ValueError("visual_segments and audio_segments must have one entry per clip")
        t = n_frames
        fv = np.zeros((batch, t), np.float32)
        fa = np.zeros((batch, t), np.float32)
        ff = np.zeros((batch, t), np.float32)
        bnd = np.zeros((batch, t, 2), np.float32)
        off = np.zeros((batch, t, 2), np.float32)
        lm = np.zeros((batch, t), bool)
        cats = np.zeros(batch, np.int64)
        centre = np.arange(t, dtype=np.float32) + 0.5
        for b in range(batch):
            n = t if lengths is None else int(lengths[b])
            lm[b, :n] = frames_known is None or bool(frames_known[b])
            for arr, segs in ((fv, visual_segments[b]), (fa, audio_segments[b])):
                for s, e in segs:
                    arr[b, max(0, s):max(0, min(n, e))] = 1.0
            ff[b] = np.maximum(fv[b], fa[b])
            for s, e in _union([*visual_segments[b], *audio_segments[b]]):
                lo, hi = max(0, s), min(n, e)
                if lo >= hi:
                    continue
                # Gaussian bumps on the first (s) and the last (e - 1) fake frame
                bnd[b, :n, 0] = np.maximum(bnd[b, :n, 0], np.exp(-0.5 * ((centre[:n] - 0.5 - s) / sigma) ** 2))
                bnd[b, :n, 1] = np.maximum(bnd[b, :n, 1], np.exp(-0.5 * ((centre[:n] - 0.5 - (e - 1)) / sigma) ** 2))
                off[b, lo:hi, 0] = centre[lo:hi] - s  # frame centre -> segment start
                off[b, lo:hi, 1] = e - centre[lo:hi]  # frame centre -> segment end
            cats[b] = category_index(fv[b].any(), fa[b].any())
        if category is not None:  # None entries: the category the window's segments imply
            cats = np.asarray([cats[b] if c is None else int(c) for b, c in enumerate(category)], np.int64)
        clip = ff.max(axis=1)
        if clip_label is not None:
            if len(clip_label) != batch:
                raise ValueError("clip_label must have one entry per clip")
            clip = np.array([clip[b] if c is None else float(c) for b, c in enumerate(clip_label)], np.float32)
        return cls(
            clip_label=torch.from_numpy(clip),
            category=torch.from_numpy(cats),
            frame_visual=torch.from_numpy(fv), frame_audio=torch.from_numpy(fa), frame_fused=torch.from_numpy(ff),
            boundary=torch.from_numpy(bnd), offsets=torch.from_numpy(off), label_mask=torch.from_numpy(lm),
            sync_offset=torch.as_tensor(sync_offset if sync_offset is not None else [0] * batch, dtype=torch.long),
        )


def _union(segments: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping or touching half-open ``[start, end)`` intervals."""
    merged: list[list[int]] = []
    for s, e in sorted((int(s), int(e)) for s, e in segments if e > s):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def iou_1d_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - IoU`` of intervals given as (distance to start, distance to end) ``(..., 2)``."""
    inter = torch.minimum(pred[..., 0], target[..., 0]) + torch.minimum(pred[..., 1], target[..., 1])
    union = torch.maximum(pred[..., 0], target[..., 0]) + torch.maximum(pred[..., 1], target[..., 1])
    return 1.0 - inter / union.clamp_min(1e-6)


def compute_losses(out: DetectorOutput, targets: DetectorTargets, weights: LossWeights) -> dict[str, torch.Tensor]:
    """All loss terms (unweighted) and ``total`` (weighted sum) as a dict of scalars."""
    terms: dict[str, torch.Tensor] = {}
    terms["clip"] = F.binary_cross_entropy_with_logits(out.clip_logits.float(), targets.clip_label.float())
    known = targets.category >= 0
    ce = F.cross_entropy(out.category_logits.float(), targets.category.clamp_min(0), reduction="none")
    terms["category"] = _masked_mean(ce, known)

    lm = targets.label_mask.bool()
    for name, logits, labels, mask in (
        ("frame_visual", out.frame_visual_logits, targets.frame_visual, out.visual_mask),
        ("frame_audio", out.frame_audio_logits, targets.frame_audio, out.audio_mask),
        ("frame_fused", out.frame_fused_logits, targets.frame_fused, out.frame_mask),
    ):
        bce = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")  # (B, T)
        terms[name] = _masked_mean(bce, mask & lm)

    valid = out.frame_mask & lm  # (B, T)
    pos_weight = torch.tensor(weights.boundary_pos_weight, device=out.boundary_logits.device)
    bce = F.binary_cross_entropy_with_logits(out.boundary_logits.float(), targets.boundary.float(),
                                             reduction="none")  # (B, T, 2)
    w = 1.0 + (pos_weight - 1.0) * targets.boundary.float()
    terms["boundary"] = _masked_mean((bce * w).sum(-1), valid)

    inside = valid & (targets.frame_fused > 0)
    terms["offsets"] = _masked_mean(iou_1d_loss(out.boundary_offsets.float(), targets.offsets.float()), inside)

    terms["sync"] = sync_loss(out, targets)
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    terms["total"] = total
    return terms


def sync_loss(out: DetectorOutput, targets: DetectorTargets) -> torch.Tensor:
    """Cross-entropy of the offset logits at real frames where the target offset is observable."""
    logits = out.sync_logits.float()  # (B, T, 2K+1)
    b, t, n = logits.shape
    k = (n - 1) // 2
    shift = targets.sync_offset.to(logits.device)  # (B,)
    target = (shift + k).clamp(0, n - 1)  # (B,)
    frames = torch.arange(t, device=logits.device)
    partner = frames[None, :] + shift[:, None]  # (B, T) audio frame matching each video frame
    in_range = (partner >= 0) & (partner < t) & (shift.abs() <= k)[:, None]
    partner_audio = torch.gather(out.audio_mask, 1, partner.clamp(0, t - 1))
    real = (targets.frame_visual <= 0) & (targets.frame_audio <= 0) & targets.label_mask.bool()
    mask = out.visual_mask & partner_audio & in_range & real  # (B, T)
    ce = F.cross_entropy(logits.reshape(b * t, n), target[:, None].expand(b, t).reshape(-1), reduction="none")
    return _masked_mean(ce.view(b, t), mask)
