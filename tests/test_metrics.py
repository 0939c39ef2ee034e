"""Metrics on hand-built cases (answers derived by hand in the comments) and property tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdetect.metrics import (
    AR_IOU_THRESHOLDS,
    AV1M,
    LAVDF,
    PROTOCOLS,
    accuracy,
    average_precision,
    average_recall,
    detection_metrics,
    equal_error_rate,
    evaluate_protocol,
    iou_1d,
    lavdf_subset_mask,
    localization_metrics,
    per_category_accuracy,
    roc_auc,
    summarise,
)


# ---------------------------------------------------------------------------------------
# IoU
def test_iou_hand_cases():
    iou = iou_1d([[0, 10], [5, 15], [20, 30], [0, 5]], [[0, 10]])
    np.testing.assert_allclose(iou[:, 0], [1.0, 5 / 15, 0.0, 0.5], rtol=1e-6)
    assert iou.dtype == np.float32


def test_iou_zero_length_union_is_zero():
    assert iou_1d([[3, 3]], [[3, 3]])[0, 0] == 0.0


segment = st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 100, allow_nan=False)).map(lambda t: sorted(t))


@given(st.lists(segment, min_size=1, max_size=8), st.lists(segment, min_size=1, max_size=8))
def test_iou_properties(a, b):
    ab, ba = iou_1d(a, b), iou_1d(b, a)
    assert ab.shape == (len(a), len(b))
    np.testing.assert_array_equal(ab, ba.T)  # symmetric
    assert np.all((ab >= 0) & (ab <= 1 + 1e-6))
    for i, (s, e) in enumerate(a):
        self_iou = iou_1d([[s, e]], [[s, e]])[0, 0]
        assert self_iou == pytest.approx(1.0) if np.float32(e) > np.float32(s) else self_iou == 0.0


@given(segment, st.floats(0.01, 50))
def test_iou_disjoint_is_zero(seg, gap):
    s, e = seg
    assert iou_1d([[s, e]], [[e + gap, e + gap + 1]])[0, 0] == 0.0


# ---------------------------------------------------------------------------------------
# AP: hand-built cases
def test_ap_single_video_counts_no_area_below_first_recall():
    # TP then FP: precision (1, .5), recall (1, 1); curve (1,0),(1,.5),(1,1) -> every step
    # has zero width: AP = 0 (the reference's quirk, kept on purpose).
    ap = average_precision([[[0.9, 0, 10], [0.8, 0, 10]]], [[[0, 10]]], [0.5])
    assert ap[0.5] == 0.0


def test_ap_two_videos_by_hand():
    # Pool sorted: .9 TP, .8 FP, .7 TP -> precision 1, .5, 2/3 ; recall .5, .5, 1.
    # Curve: (1,0) (1,2/3) (.5,.5) (.5,1); running max 0, 2/3, 2/3, 1;
    # AP = 0*0 + .5*2/3 + 0*2/3 = 1/3.
    props = [[[0.9, 0, 10]], [[0.8, 20, 30], [0.7, 0, 10]]]
    gts = [[[0, 10]], [[0, 10]]]
    assert average_precision(props, gts, [0.5])[0.5] == pytest.approx(1 / 3)


def test_iou_exactly_at_threshold_is_not_a_match():
    # Video B's first proposal [0, 1] has IoU exactly 0.5 with [0, 2].
    props = [[[0.9, 0, 4]], [[0.8, 0, 1], [0.7, 0, 2]]]
    gts = [[[0, 4]], [[0, 2]]]
    ap = average_precision(props, gts, [0.5, 0.49])
    # t = .5 : TP, FP, TP -> 1/3 (as above).
    assert ap[0.5] == pytest.approx(1 / 3)
    # t = .49: TP, TP (B's [0,1] takes the segment), FP -> precision 1, 1, 2/3, recall .5, 1, 1;
    # curve (1,0) (1,2/3) (1,1) (.5,1) -> AP = .5 * 1 = .5
    assert ap[0.49] == pytest.approx(0.5)


def test_greedy_takes_first_proposal_in_given_order_not_best_iou():
    # Video V: segment [0,10]; proposals [0,8] (IoU .8) then [0,10] (IoU 1). X: one perfect proposal.
    props = [[[0.95, 0, 10]], [[0.9, 0, 8], [0.8, 0, 10]]]
    gts = [[[0, 10]], [[0, 10]]]
    ap = average_precision(props, gts, [0.5, 0.85])
    assert ap[0.5] == pytest.approx(0.5)  # TP, TP, FP
    assert ap[0.85] == pytest.approx(1 / 3)  # TP, FP, TP


def test_each_proposal_matches_one_segment_only():
    # One proposal overlapping two segments can be the TP of only the first one.
    props = [[[0.9, 0, 10]], [[0.5, 0, 1]]]
    gts = [[[0, 10], [0, 9.9]], [[0, 1]]]
    # pool: .9 TP (seg 1 of video 0; seg 2 finds it taken), .5 TP; 3 labels.
    # precision 1, 1; recall 1/3, 2/3; curve (1,0) (2/3,1) (1/3,1): AP = 1/3*0 + 1/3*1 = 1/3
    assert average_precision(props, gts, [0.5])[0.5] == pytest.approx(1 / 3)


@pytest.mark.parametrize("order,expected", [((0, 1, 2), 1 / 3), ((0, 2, 1), 0.5)])
def test_ties_in_confidence_keep_video_order(order, expected):
    videos = [([[0.5, 0, 1]], [[0, 1]]), ([[0.5, 5, 6]], []), ([[0.5, 0, 1]], [[0, 1]])]
    props = [videos[i][0] for i in order]
    gts = [videos[i][1] for i in order]
    # (0,1,2): TP, FP, TP -> 1/3 ; (0,2,1): TP, TP, FP -> 1/2 (stable sort of equal scores)
    assert average_precision(props, gts, [0.5])[0.5] == pytest.approx(expected)


def test_real_only_videos_and_no_proposals():
    props = [[[0.9, 0, 1]], [[0.4, 2, 3]]]
    gts = [[], []]
    res = localization_metrics(props, gts, [0.5], [10])
    assert math.isnan(res["ap"][0.5])  # no ground truth at all: undefined
    assert res["ar"][10] == 0.0
    empty = localization_metrics([[], []], [[[0, 1]], []], [0.5], [10])
    assert empty["ap"][0.5] == 0.0 and empty["ar"][10] == 0.0


def test_video_without_proposals_counts_its_segments_as_missed():
    res = localization_metrics([[[0.9, 0, 1]], []], [[[0, 1]], [[0, 1]]], [0.5], [5])
    assert res["ar"][5] == pytest.approx(0.5)
    assert res["ap"][0.5] == 0.0  # pool TP only: curve (1,0) (.5,1) -> .5 * 0


# ---------------------------------------------------------------------------------------
# AR
def test_ar_counts_only_first_n_proposals():
    props = [[[0.9, 20, 30], [0.8, 0, 10]]]
    gts = [[[0, 10]]]
    ar = average_recall(props, gts, [1, 2, 100])
    assert ar == {1: 0.0, 2: 1.0, 100: 1.0}


def test_ar_averages_over_thresholds_with_strict_comparison():
    # IoU .8: found at .5 .55 .6 .65 .7 .75 but not at .8 (not strictly greater) -> 6/10.
    ar = average_recall([[[0.9, 0, 8]]], [[[0, 10]]], [1])
    assert ar[1] == pytest.approx(0.6)


def test_ar_pools_tp_and_fn_over_videos():
    # 3 segments: video 0 finds 1 of 2, video 1 finds its 1 -> 2/3 at every threshold.
    props = [[[0.9, 0, 10]], [[0.9, 5, 6]]]
    gts = [[[0, 10], [20, 30]], [[5, 6]]]
    assert average_recall(props, gts, [10])[10] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------
# agreement with a plain, loop-by-loop reading of the protocol
def _naive(props, gts, ap_t, ns, ar_t):
    out = {"ap": {}, "ar": {}}
    f32 = np.float32

    def iou(p, g):
        return iou_1d([p], [g])[0, 0]

    for t in ap_t:
        pool, n_labels = [], 0
        for p, g in zip(props, gts):
            n_labels += len(g)
            taken = []
            for seg in g:
                for i, row in enumerate(p):
                    if iou(row[1:], seg) > f32(t) and i not in taken:
                        taken.append(i)
                        break
            pool += [(f32(row[0]), i in taken) for i, row in enumerate(p)]
        pool = sorted(pool, key=lambda x: -x[0])  # Python's sort is stable
        if n_labels == 0:
            out["ap"][t] = float("nan")
            continue
        x, y, tp = [1.0], [0.0], 0
        pts = []
        for k, (_c, hit) in enumerate(pool):
            tp += hit
            pts.append((tp / n_labels, tp / (k + 1)))
        for r, p in reversed(pts):
            x.append(r)
            y.append(p)
        ap, best = 0.0, -1.0
        for k in range(len(x) - 1):
            best = max(best, y[k])
            ap += abs(x[k + 1] - x[k]) * best
        out["ap"][t] = ap
    for n in ns:
        recalls = []
        for t in ar_t:
            tp = fn = 0
            for p, g in zip(props, gts):
                for seg in g:
                    found = any(iou(row[1:], seg) > f32(t) for row in p[:n])
                    tp += found
                    fn += not found
            recalls.append(tp / (tp + fn) if tp + fn else 0.0)
        out["ar"][n] = float(np.mean(recalls))
    return out


coord = st.integers(0, 40).map(lambda v: v / 4)  # coarse grid: many exact ties and exact IoUs
seg_s = st.tuples(coord, coord).map(sorted).map(list)
prop_s = st.tuples(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]), coord, coord).map(lambda t: [t[0], *sorted(t[1:])])
video_s = st.tuples(st.lists(prop_s, min_size=0, max_size=6), st.lists(seg_s, min_size=0, max_size=3))


@settings(max_examples=60, deadline=None)
@given(st.lists(video_s, min_size=1, max_size=6))
def test_vectorised_equals_plain_reading(videos):
    props = [v[0] for v in videos]
    gts = [v[1] for v in videos]
    ap_t, ns = (0.25, 0.5, 0.75), (1, 2, 5)
    got = localization_metrics(props, gts, ap_t, ns, AR_IOU_THRESHOLDS)
    want = _naive(props, gts, ap_t, ns, AR_IOU_THRESHOLDS)
    for t in ap_t:
        if math.isnan(want["ap"][t]):
            assert math.isnan(got["ap"][t])
        else:
            assert got["ap"][t] == pytest.approx(want["ap"][t], abs=1e-12)
    for n in ns:
        assert got["ar"][n] == pytest.approx(want["ar"][n], abs=1e-12)


def test_chunked_packing_gives_the_same_answer():
    from avdetect import metrics

    rng = np.random.default_rng(3)
    props, gts = [], []
    for _ in range(40):
        g = np.sort(rng.uniform(0, 20, (int(rng.integers(0, 3)), 2)), axis=1)
        p = np.sort(rng.uniform(0, 20, (int(rng.integers(1, 15)), 2)), axis=1)
        props.append(np.column_stack([rng.random(len(p)), p]))
        gts.append(g)
    whole = metrics._pack(props, gts, 0.5)
    small = metrics._pack(props, gts, 0.5, chunk_pairs=7)
    for name in ("pair_gt", "pair_prop", "pair_iou"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(small, name))


def test_protocols_match_published_sets():
    assert LAVDF.ap_iou_thresholds == (0.5, 0.75, 0.95) and LAVDF.ar_n_proposals == (100, 50, 20, 10)
    assert AV1M.ap_iou_thresholds == (0.5, 0.75, 0.9, 0.95) and AV1M.ar_n_proposals == (50, 30, 20, 10, 5)
    assert AR_IOU_THRESHOLDS == pytest.approx(np.arange(0.5, 0.96, 0.05))
    res = evaluate_protocol([[[0.9, 0, 10]]], [[[0, 10]]], "av1m")
    assert list(res["ap"]) == [0.5, 0.75, 0.9, 0.95] and list(res["ar"]) == [50, 30, 20, 10, 5]
    assert set(PROTOCOLS) == {"lavdf", "av1m"}


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="video 0"):
        localization_metrics([[[0.9, 1]]], [[[0, 1]]], [0.5], [1])
    with pytest.raises(ValueError, match="2 proposal lists for 1 videos"):
        localization_metrics([[], []], [[]], [0.5], [1])


# ---------------------------------------------------------------------------------------
# detection
def test_auc_by_hand():
    # positive/negative pairs: (.9,.5) (.9,.1) (.4,.5)x (.4,.1) -> 3/4
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_auc_matches_sklearn_on_random_scores():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.4
    s = np.round(rng.random(500) + 0.3 * y, 2)  # rounded: many ties
    assert roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)


def test_accuracy_threshold_is_inclusive():
    assert accuracy([1, 0, 1, 0], [0.5, 0.49, 0.2, 0.7]) == pytest.approx(0.5)
    assert accuracy([1, 0], [0.6, 0.4], threshold=0.7) == pytest.approx(0.5)


def test_eer_by_hand():
    # threshold .4: FPR .5 (neg .5 >= .4), FNR 0; threshold .5: FPR .5, FNR .5 -> EER .5 at .5
    eer, thr = equal_error_rate([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1])
    assert eer == pytest.approx(0.5) and thr == pytest.approx(0.5)
    eer, _ = equal_error_rate([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1])
    assert eer == 0.0


def test_eer_interpolates_between_sweep_points():
    # Scores: pos .9 .6, neg .7 .1. thr .6: FPR .5, FNR 0 (diff .5); thr .7: FPR .5, FNR .5 -> .5
    # thr .9: FPR 0, FNR .5. Crossing exactly at .7: EER .5.
    eer, thr = equal_error_rate([1, 1, 0, 0], [0.9, 0.6, 0.7, 0.1])
    assert eer == pytest.approx(0.5) and thr == pytest.approx(0.7)
    # 3 pos (.9 .8 .3), 2 neg (.5 .1): thr .5 FPR .5 FNR 1/3 (diff 1/6); thr .8 FPR 0 FNR 1/3 (diff -1/3)
    # linear interpolation: w = (1/6)/(1/2) = 1/3 -> EER = .5 + 1/3 * (0 - .5) = 1/3
    eer, _ = equal_error_rate([1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.5, 0.1])
    assert eer == pytest.approx(1 / 3)


def test_per_category_accuracy():
    acc = per_category_accuracy([0, 1, 1, 1], [0.1, 0.9, 0.2, 0.8], ["RR", "FF", "FF", "RF"])
    assert acc == {"FF": 0.5, "RF": 1.0, "RR": 1.0}
    det = detection_metrics([0, 1], [0.2, 0.7], categories=["a", "b"])
    assert det["auc"] == 1.0 and det["category_accuracy"] == {"a": 1.0, "b": 1.0}


def test_lavdf_subsets_follow_lavdf_evaluate():
    v = [False, True, False, True]  # real, visual-only, audio-only, both
    a = [False, False, True, True]
    assert lavdf_subset_mask(v, a, "full").tolist() == [True] * 4
    assert lavdf_subset_mask(v, a, "visual_only").tolist() == [True, True, False, True]
    assert lavdf_subset_mask(v, a, "audio_only").tolist() == [True, False, True, True]
    with pytest.raises(ValueError):
        lavdf_subset_mask(v, a, "nope")


def test_summarise_makes_json_keys():
    out = summarise({"ap": {0.5: 0.25, 0.95: float("nan")}, "ar": {50: 0.5}, "auc": 0.9})
    assert out == {"ap": {"0.5": 0.25, "0.95": None}, "ar": {"50": 0.5}, "auc": 0.9}
