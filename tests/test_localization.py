"""Proposal stage: candidate sources, soft-NMS, synthetic tracks with known segments, windows."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdetect.localization import (
    ProposalConfig,
    ScoreTrack,
    TrackStitcher,
    candidates,
    find_peaks,
    fuse_tracks,
    merge_window_proposals,
    propose,
    propose_modalities,
    propose_windows,
    soft_nms,
    threshold_runs,
    window_weights,
)
from avdetect.metrics import iou_1d
from avdetect.timegrid import FPS


def test_threshold_runs_and_gap_merging():
    x = np.array([0, 0.9, 0.9, 0.1, 0.8, 0, 0, 0, 0.7, 0.7])
    np.testing.assert_array_equal(threshold_runs(x, 0.5), [[1, 3], [4, 5], [8, 10]])
    np.testing.assert_array_equal(threshold_runs(x, 0.5, merge_gap=1), [[1, 5], [8, 10]])
    np.testing.assert_array_equal(threshold_runs(x, 0.5, merge_gap=3), [[1, 10]])
    assert threshold_runs(x, 0.95).shape == (0, 2)


def test_find_peaks_orders_by_height_and_skips_plateau_repeats():
    x = np.array([0.1, 0.5, 0.2, 0.9, 0.9, 0.3, 0.05, 0.4])
    assert find_peaks(x, 0.2, 10).tolist() == [3, 1, 7]
    assert find_peaks(x, 0.2, 1).tolist() == [3]
    assert find_peaks(x, 0.95, 10).tolist() == []


def _synthetic(rng, n_frames, segments, noise=0.08, boundaries=False, distances=False):
    """Frame scores high inside the true segments (frame index ranges [s, e)), plus noise."""
    f = np.full(n_frames, 0.1)
    for s, e in segments:
        f[s:e] = 0.85
    f = np.clip(f + rng.normal(0, noise, n_frames), 0, 1)
    kw = {"frame": f}
    if boundaries:
        st_, en = np.full(n_frames, 0.05), np.full(n_frames, 0.05)
        for s, e in segments:
            st_[s], en[e - 1] = 0.9, 0.9
        kw["start"], kw["end"] = st_, en
    if distances:
        sd, ed = np.full(n_frames, 1.0), np.full(n_frames, 1.0)
        for s, e in segments:
            idx = np.arange(s, e)
            sd[s:e] = idx + 0.5 - s + rng.normal(0, 0.5, e - s)
            ed[s:e] = e - (idx + 0.5) + rng.normal(0, 0.5, e - s)
        kw["start_dist"], kw["end_dist"] = sd, ed
    return ScoreTrack(**kw)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("variant", ["frames", "boundaries", "distances"])
def test_top_proposals_recover_known_segments(seed, variant):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(300, 800))
    # two segments of 10 - 80 frames, well apart
    a = int(rng.integers(20, n // 2 - 100))
    b = int(rng.integers(n // 2 + 10, n - 100))
    segs = [(a, a + int(rng.integers(10, 80))), (b, b + int(rng.integers(10, 80)))]
    track = _synthetic(rng, n, segs, boundaries=variant == "boundaries", distances=variant == "distances")
    props = propose(track)
    truth = np.array(segs, dtype=float) / FPS  # seconds
    top2 = iou_1d(props[:2, 1:], truth)
    assert top2.max(axis=0).min() >= 0.9, (props[:4], truth)  # both found among the top 2
    assert top2.max(axis=1).min() >= 0.9
    assert np.all(np.diff(props[:, 0]) <= 1e-12)  # ranked
    assert len(props) <= ProposalConfig().max_proposals


def test_single_segment_top_proposal_and_seconds():
    f = np.zeros(250)
    f[50:100] = 1.0
    props = propose(ScoreTrack(f))
    np.testing.assert_allclose(props[0, 1:], [2.0, 4.0])  # frames 50..99 -> [2.0 s, 4.0 s)
    assert props[0, 0] == pytest.approx(1.0)


def test_boundaries_split_touching_segments():
    # Two fakes back to back: one long run of high score; only the boundary peaks tell them apart.
    rng = np.random.default_rng(1)
    track = _synthetic(rng, 400, [(100, 160), (160, 230)], noise=0.03, boundaries=True)
    props = propose(track)
    truth = np.array([[100, 160], [160, 230]]) / FPS
    best = iou_1d(props[:3, 1:], truth).max(axis=0)
    assert best.min() >= 0.9


def test_distance_regressions_add_candidates():
    rng = np.random.default_rng(2)
    track = _synthetic(rng, 300, [(50, 120)], distances=True)
    with_reg = candidates(track, ProposalConfig())
    without = candidates(track, ProposalConfig(use_distances=False))
    assert len(with_reg) > len(without)


def test_no_fake_gives_no_or_weak_proposals():
    track = ScoreTrack(np.full(200, 0.05))
    assert len(propose(track)) == 0  # nothing crosses the lowest threshold
    assert propose(ScoreTrack(np.zeros(0))).shape == (0, 3)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    f = torch.zeros(100)
    f[10:30] = 0.9
    props = propose(ScoreTrack(f))
    np.testing.assert_allclose(props[0, 1:], [0.4, 1.2])


def test_track_validation():
    with pytest.raises(ValueError, match="frames"):
        ScoreTrack(np.zeros(10), start=np.zeros(9), end=np.zeros(10))
    with pytest.raises(ValueError, match="both start and end"):
        ScoreTrack(np.zeros(10), start=np.zeros(10))
    with pytest.raises(ValueError, match="1-D"):
        ScoreTrack(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="nms"):
        ProposalConfig(nms="median")


def test_modalities_and_fusion():
    v = np.zeros(200)
    v[20:60] = 0.9
    a = np.zeros(200)
    a[120:150] = 0.8
    out = propose_modalities({"visual": ScoreTrack(v), "audio": ScoreTrack(a)})
    assert set(out) == {"visual", "audio", "fused"}
    np.testing.assert_allclose(out["visual"][0, 1:], [0.8, 2.4])
    np.testing.assert_allclose(out["audio"][0, 1:], [4.8, 6.0])
    fused_top = out["fused"][:2, 1:]
    assert iou_1d(fused_top, [[0.8, 2.4], [4.8, 6.0]]).max(axis=0).min() == pytest.approx(1.0)
    fused = fuse_tracks(ScoreTrack(v), ScoreTrack(a), mode="mean")
    assert fused.frame[30] == pytest.approx(0.45)


# ---------------------------------------------------------------------------------------
# soft-NMS
def test_soft_nms_gaussian_decay_by_hand():
    p = np.array([[0.9, 0, 10], [0.8, 0, 8], [0.7, 20, 30]])
    out = soft_nms(p, "gaussian", sigma=0.5, max_keep=10)
    # [0, 8] has IoU .8 with [0, 10]: 0.8 * exp(-.64 / .5); [20, 30] is untouched.
    np.testing.assert_allclose(out[:, 0], [0.9, 0.7, 0.8 * np.exp(-0.64 / 0.5)])
    np.testing.assert_allclose(out[:, 1:], [[0, 10], [20, 30], [0, 8]])


def test_soft_nms_linear_hard_and_cap():
    p = np.array([[0.9, 0, 10], [0.8, 0, 8], [0.7, 20, 30], [0.6, 1, 9]])
    lin = soft_nms(p, "linear", iou_threshold=0.5, max_keep=10)
    # pick [0,10]: [0,8] and [1,9] have IoU .8 -> .16 and .12; [20,30] keeps .7; pick it, then
    # [0,8] (.16): IoU with [1,9] is 7/9 -> .12 * 2/9.
    np.testing.assert_allclose(lin[:, 0], [0.9, 0.7, 0.16, 0.12 * 2 / 9])
    np.testing.assert_allclose(lin[:, 1:], [[0, 10], [20, 30], [0, 8], [1, 9]])
    hard = soft_nms(p, "hard", iou_threshold=0.5, max_keep=10)
    np.testing.assert_allclose(hard[:, 0], [0.9, 0.7])  # both overlapping ones removed
    capped = soft_nms(p, "gaussian", max_keep=2)
    assert len(capped) == 2


def test_soft_nms_linear_by_hand():
    p = np.array([[0.9, 0, 10], [0.8, 0, 8]])
    out = soft_nms(p, "linear", iou_threshold=0.5)
    np.testing.assert_allclose(out[:, 0], [0.9, 0.8 * (1 - 0.8)])
    low = soft_nms(p, "linear", iou_threshold=0.85)  # IoU .8 is below: untouched
    np.testing.assert_allclose(low[:, 0], [0.9, 0.8])


prop_st = st.tuples(st.floats(0.01, 1), st.floats(0, 50), st.floats(0.1, 20)).map(lambda t: [t[0], t[1], t[1] + t[2]])


@settings(max_examples=60, deadline=None)
@given(st.lists(prop_st, min_size=0, max_size=30), st.integers(1, 12), st.sampled_from(["gaussian", "linear", "hard"]))
def test_soft_nms_properties(props, cap, method):
    p = np.array(props, dtype=float).reshape(-1, 3)
    out = soft_nms(p, method, max_keep=cap, min_score=0.0)
    assert len(out) <= min(cap, len(p))
    assert np.all(np.diff(out[:, 0]) <= 1e-12)  # returned best first
    if len(p):
        assert out[0, 0] == pytest.approx(p[:, 0].max())  # the best is never decayed
    # every kept segment is an input segment with a score no higher than its original
    for s, a, b in out:
        rows = p[(p[:, 1] == a) & (p[:, 2] == b)]
        assert len(rows) and s <= rows[:, 0].max() + 1e-12
    if method != "hard":
        assert len(out) == min(cap, len(p))  # soft decay never drops below min_score=0


# ---------------------------------------------------------------------------------------
# windows
def test_window_weights_taper_and_stay_positive():
    w = window_weights(10, 3)
    np.testing.assert_allclose(w, [0.25, 0.5, 0.75, 1, 1, 1, 1, 0.75, 0.5, 0.25])
    assert np.all(window_weights(4, 10) > 0)


def _windows(track: ScoreTrack, size: int, hop: int):
    n = track.n_frames
    starts = list(range(0, max(n - size, 0) + 1, hop))
    if starts[-1] + size < n:
        starts.append(n - size)
    return [(s, ScoreTrack(**{k: v[s:s + size] for k, v in track.fields().items()})) for s in starts]


@pytest.mark.parametrize("variant", ["frames", "boundaries", "distances"])
def test_window_merging_reproduces_single_window(variant):
    rng = np.random.default_rng(7)
    # a segment that crosses the window boundaries
    track = _synthetic(rng, 1000, [(180, 330), (600, 640)], boundaries=variant == "boundaries",
                       distances=variant == "distances")
    single = propose(track)
    merged = propose_windows(_windows(track, size=256, hop=192), n_frames=1000)
    np.testing.assert_allclose(merged, single, atol=1e-9)


def test_window_merging_averages_disagreeing_overlaps():
    st_ = TrackStitcher(10, taper=2)
    st_.add(0, ScoreTrack(np.full(6, 1.0)))
    st_.add(4, ScoreTrack(np.full(6, 0.0)))
    merged = st_.result().frame
    np.testing.assert_allclose(merged[:4], 1.0)
    np.testing.assert_allclose(merged[6:], 0.0)
    # frames 4, 5: window 1 weights (2/3, 1/3), window 2 weights (1/3, 2/3)
    np.testing.assert_allclose(merged[4:6], [2 / 3, 1 / 3])


def test_stitcher_rejects_gaps_and_out_of_range():
    st_ = TrackStitcher(10)
    st_.add(0, ScoreTrack(np.zeros(4)))
    with pytest.raises(ValueError, match="covered by no window"):
        st_.result()
    with pytest.raises(ValueError, match="outside"):
        st_.add(8, ScoreTrack(np.zeros(4)))


def test_merge_window_proposals_dedups_overlap_and_caps():
    # The same segment [10 s, 12 s] seen by a window at 0 s and one at 8 s (relative [2, 4]).
    w1 = np.array([[0.9, 10.0, 12.0], [0.3, 1.0, 2.0]])
    w2 = np.array([[0.8, 2.0, 4.0], [0.6, 15.0, 16.0]])
    out = merge_window_proposals([(0.0, w1), (8.0, w2)], ProposalConfig(nms="hard", iou_threshold=0.5))
    np.testing.assert_allclose(out, [[0.9, 10, 12], [0.6, 23, 24], [0.3, 1, 2]])
    capped = merge_window_proposals([(0.0, w1), (8.0, w2)], ProposalConfig(max_proposals=1))
    assert capped.shape == (1, 3)
