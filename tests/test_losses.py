"""Loss terms and target construction on hand-built inputs."""
from __future__ import annotations

import pytest
import torch

from avdetect.models.config import LossWeights
from avdetect.models.detector import CATEGORIES, DetectorOutput
from avdetect.models.losses import DetectorTargets, compute_losses, iou_1d_loss, sync_loss


def test_targets_from_segments():
    tg = DetectorTargets.from_segments(12, [[(2, 5)], [], []], [[(4, 7)], [], [(0, 3)]], lengths=[12, 8, 10])
    assert tg.frame_visual[0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert tg.frame_audio[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert tg.frame_fused[0].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert tg.clip_label.tolist() == [1.0, 0.0, 1.0]
    assert [CATEGORIES[i] for i in tg.category.tolist()] == [
        "FakeVideo-FakeAudio", "RealVideo-RealAudio", "RealVideo-FakeAudio"]
    assert tg.label_mask.sum(1).tolist() == [12, 8, 10]
    # boundaries peak at the first and the last fake frame of the fused segment [2, 7)
    assert int(tg.boundary[0, :, 0].argmax()) == 2 and int(tg.boundary[0, :, 1].argmax()) == 6
    assert tg.boundary[1].max() == 0
    # offsets: distances from each frame centre to the segment edges
    assert tg.offsets[0, 2].tolist() == [0.5, 4.5]
    assert tg.offsets[0, 6].tolist() == [4.5, 0.5]
    assert (tg.offsets[0, :2] == 0).all()
    with pytest.raises(ValueError):
        DetectorTargets.from_segments(5, [[]], [[], []])


def test_segments_cut_by_the_window_keep_their_true_edges():
    # the fake runs from frame -4 to 6 and from 8 to 15, the window holds frames 0..9
    tg = DetectorTargets.from_segments(10, [[(-4, 6)]], [[(8, 15)]])
    assert tg.frame_fused[0].tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 1, 1]
    assert tg.offsets[0, 0].tolist() == [4.5, 5.5]  # the start lies outside the window
    assert tg.offsets[0, 9].tolist() == [1.5, 5.5]
    assert tg.boundary[0, 0, 0] < 0.01  # no "start" where the fake merely enters the window
    assert tg.boundary[0, 8, 0] == 1.0 and tg.boundary[0, 5, 1] == 1.0
    assert tg.boundary[0, 9, 1] < 0.01
    # overlapping and touching segments of the two modalities form one fused segment
    tg = DetectorTargets.from_segments(10, [[(1, 4)]], [[(4, 7)]])
    assert tg.offsets[0, 1].tolist() == [0.5, 5.5]
    assert int((tg.boundary[0, :, 0] == 1).sum()) == 1


def test_iou_1d_loss():
    assert iou_1d_loss(torch.tensor([2.0, 3.0]), torch.tensor([2.0, 3.0])).item() == pytest.approx(0.0)
    # pred [t-1, t+1], target [t-2, t+2]: IoU = 2 / 4
    assert iou_1d_loss(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])).item() == pytest.approx(0.5)


def _output(t, logit_fake, b=1, k=2, sync_peak=None, audio=True):
    full = torch.ones(b, t, dtype=torch.bool)
    sync = torch.zeros(b, t, 2 * k + 1)
    if sync_peak is not None:
        sync[..., k + sync_peak] = 10.0
    frame = torch.as_tensor(logit_fake, dtype=torch.float32).expand(b, t).clone()
    return DetectorOutput(
        clip_logits=frame.mean(1), category_logits=torch.zeros(b, 4), frame_visual_logits=frame,
        frame_audio_logits=frame, frame_fused_logits=frame, boundary_logits=torch.full((b, t, 2), -5.0),
        boundary_offsets=torch.ones(b, t, 2), sync_logits=sync, visual_mask=full,
        audio_mask=full if audio else ~full, frame_mask=full)


def test_right_predictions_cost_less_than_wrong_ones():
    real = DetectorTargets.from_segments(10, [[]], [[]])
    good = compute_losses(_output(10, -6.0), real, LossWeights())
    bad = compute_losses(_output(10, 6.0), real, LossWeights())
    for name in ("clip", "frame_visual", "frame_audio", "frame_fused"):
        assert good[name] < 0.01 < 1.0 < bad[name]
    assert good["total"] < bad["total"]


def test_empty_masks_give_zero_not_nan():
    real = DetectorTargets.from_segments(6, [[]], [[]], category=[-1])
    out = _output(6, 0.0, audio=False)
    terms = compute_losses(out, real, LossWeights())
    assert all(torch.isfinite(v) for v in terms.values())
    assert terms["category"] == 0 and terms["offsets"] == 0  # unknown category, no fake frame
    assert terms["sync"] == 0  # no audio: nothing to sync
    assert terms["frame_audio"] == 0


def test_sync_loss_follows_the_applied_shift():
    out = _output(12, -5.0, sync_peak=1)  # model says: audio is one frame late
    shifted = DetectorTargets.from_segments(12, [[]], [[]], sync_offset=[1])
    aligned = DetectorTargets.from_segments(12, [[]], [[]])
    assert sync_loss(out, shifted) < 0.01 < 5.0 < sync_loss(out, aligned)
    # fake frames are left out of the self-supervised term
    fake = DetectorTargets.from_segments(12, [[(0, 12)]], [[]])
    assert sync_loss(out, fake) == 0
