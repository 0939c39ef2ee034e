"""Evaluation metrics, computed exactly as the published LAV-DF and AV-Deepfake1M tables are.

Temporal localisation (DESIGN.md section 4; LAV-DF ``metrics.py`` and the ``avdeepfake1m``
package's ``ap_ar_1d``):

* **AP@t** -- per video, every ground-truth segment in turn takes the *first* proposal, in the
  order the proposals are given (i.e. score order), whose IoU with it is strictly greater than
  ``t`` and that no earlier segment of the same video took; that proposal is a true positive.
  The (confidence, is_tp) pairs of all videos are pooled (videos without fake segments add
  only false positives), stable-sorted by confidence, descending, and turned into cumulative
  precision and recall (recall over the total number of ground-truth segments). The curve is
  the (recall, precision) points reversed with (1, 0) put in front; AP is the sum over
  consecutive points of ``|delta recall| * running max of precision``. The area below the first
  recall reached is not counted: that is what the published numbers did, so we keep it.
* **AR@N** -- per video only the first ``N`` proposals count; a ground-truth segment is found at
  ``t`` when its best IoU among them is ``> t``. True positives and false negatives are summed
  over all videos, recall is ``TP / (TP + FN)``, and AR@N is its mean over the AR thresholds
  (0.5, 0.55, ..., 0.95).

Both reference implementations compute in float32 (segments, confidences, IoU and thresholds);
this module does the same for everything that decides a match or an order, so that an IoU that
sits exactly on a threshold is decided the same way, and accumulates the curves in float64.
A video whose proposal list is empty counts all its segments as misses (the Rust reference
panics on such a file; LAV-DF's code fails too).

The implementation is vectorised over all videos at once: proposals and segments are packed
into flat arrays, every (segment, proposal) pair of the same video gets its IoU in one numpy
expression, and the greedy matching runs one numpy step per *segment index within a video*
(1 for most datasets), not per video. Only pairs whose IoU exceeds the smallest threshold are
kept after the first pass, so the per-threshold work is small.

Detection: ROC AUC (rank statistic, ties averaged -- equal to the trapezoidal ROC area),
accuracy at a threshold, equal error rate, per-category accuracy (FakeAVCeleb).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

AR_IOU_THRESHOLDS: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class Protocol:
    """The thresholds and proposal counts one benchmark reports."""

    name: str
    ap_iou_thresholds: tuple[float, ...]
    ar_n_proposals: tuple[int, ...]
    ar_iou_thresholds: tuple[float, ...] = AR_IOU_THRESHOLDS


LAVDF = Protocol("lavdf", (0.5, 0.75, 0.95), (100, 50, 20, 10))
AV1M = Protocol("av1m", (0.5, 0.75, 0.9, 0.95), (50, 30, 20, 10, 5))
PROTOCOLS: dict[str, Protocol] = {"lavdf": LAVDF, "av1m": AV1M}


# ---------------------------------------------------------------------------------------
# IoU
def iou_1d(proposals, targets, dtype=np.float32) -> np.ndarray:
    """IoU of every 1-D segment in ``proposals`` (M, 2) with every one in ``targets`` (N, 2):
    the one 1-D IoU of the package (metrics, soft-NMS, the demo, the tests).

    Returns an (M, N) array of ``dtype``: float32 by default, as the reference scorers compute
    it (their thresholds are float32 too); soft-NMS asks for float64. Segments are ``[start,
    end]``; disjoint segments give 0, and so does a pair whose union has zero length.
    """
    p = np.asarray(proposals, dtype=dtype).reshape(-1, 2)
    t = np.asarray(targets, dtype=dtype).reshape(-1, 2)
    return _pair_iou(p[:, None, 0], p[:, None, 1], t[None, :, 0], t[None, :, 1])


def _pair_iou(ps, pe, ts, te) -> np.ndarray:
    """Element-wise IoU of segments [ps, pe] and [ts, te] (broadcasting), in their dtype."""
    dt = np.result_type(ps, te)
    inter = np.maximum(np.minimum(pe, te) - np.maximum(ps, ts), dt.type(0))
    union = np.maximum(pe, te) - np.minimum(ps, ts)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, dt.type(0)).astype(dt, copy=False)


# ---------------------------------------------------------------------------------------
# packing
@dataclass
class _Packed:
    """All videos' proposals and ground truth in flat arrays (see module docstring)."""

    conf: np.ndarray  # (P,) float32, confidences in file order, videos concatenated
    p_rank: np.ndarray  # (P,) int64, index of the proposal within its video
    n_gt: int
    pair_gt: np.ndarray  # (K,) int64, global ground-truth index of a kept pair
    pair_prop: np.ndarray  # (K,) int64, global proposal index of a kept pair
    pair_g_rank: np.ndarray  # (K,) int64, index of the segment within its video
    pair_iou: np.ndarray  # (K,) float32


def _as_rows(x, i: int, width: int, what: str) -> np.ndarray:
    """``x`` as an (n, width) float64 array; (0, width) when empty; ValueError naming video i."""
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, width))
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{what} of video {i} must have shape (n, {width}), got {a.shape}")
    return a


def _as_proposals(p, i: int) -> np.ndarray:
    return _as_rows(p, i, 3, "proposals [confidence, start, end]")


def _as_segments(g, i: int) -> np.ndarray:
    return _as_rows(g, i, 2, "ground truth [start, end]")


def _pack(proposals: Sequence, ground_truth: Sequence, min_iou: float, chunk_pairs: int = 4_000_000) -> _Packed:
    if len(proposals) != len(ground_truth):
        raise ValueError(f"{len(proposals)} proposal lists for {len(ground_truth)} videos")
    props = [_as_proposals(p, i) for i, p in enumerate(proposals)]
    gts = [_as_segments(g, i) for i, g in enumerate(ground_truth)]
    n_p = np.fromiter((len(p) for p in props), dtype=np.int64, count=len(props))
    n_g = np.fromiter((len(g) for g in gts), dtype=np.int64, count=len(gts))
    all_p = np.concatenate(props) if props else np.zeros((0, 3))
    all_g = np.concatenate(gts) if gts else np.zeros((0, 2))
    conf = all_p[:, 0].astype(np.float32)
    p_start = all_p[:, 1].astype(np.float32)
    p_end = all_p[:, 2].astype(np.float32)
    g_start = all_g[:, 0].astype(np.float32)
    g_end = all_g[:, 1].astype(np.float32)

    p_off = np.concatenate([[0], np.cumsum(n_p)])  # first proposal of each video
    g_off = np.concatenate([[0], np.cumsum(n_g)])
    g_video = np.repeat(np.arange(len(gts)), n_g)  # (G,)
    p_rank = np.arange(len(all_p)) - np.repeat(p_off[:-1], n_p)
    g_rank = np.arange(len(all_g)) - np.repeat(g_off[:-1], n_g)
    per_gt = n_p[g_video]  # pairs each segment makes: one per proposal of its video

    # Every (segment, proposal) pair of the same video, ordered by segment then proposal rank.
    # Built in chunks of segments so that memory stays bounded; only pairs over min_iou kept.
    kept_gt, kept_prop, kept_iou = [], [], []
    n_gt = len(all_g)
    start = 0
    cum = np.concatenate([[0], np.cumsum(per_gt)])
    thr = np.float32(min_iou)
    while start < n_gt:
        stop = int(np.searchsorted(cum, cum[start] + chunk_pairs, side="right")) - 1
        stop = min(max(stop, start + 1), n_gt)
        counts = per_gt[start:stop]
        total = int(counts.sum())
        if total:
            gidx = np.repeat(np.arange(start, stop), counts)  # (K,)
            within = np.arange(total) - np.repeat(cum[start:stop] - cum[start], counts)
            pidx = p_off[g_video[gidx]] + within
            iou = _pair_iou(p_start[pidx], p_end[pidx], g_start[gidx], g_end[gidx])
            keep = iou > thr
            kept_gt.append(gidx[keep])
            kept_prop.append(pidx[keep])
            kept_iou.append(iou[keep])
        start = stop
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dtype=dt))
    pair_gt = cat(kept_gt, np.int64)
    return _Packed(
        conf=conf,
        p_rank=p_rank,
        n_gt=n_gt,
        pair_gt=pair_gt,
        pair_prop=cat(kept_prop, np.int64),
        pair_g_rank=g_rank[pair_gt],
        pair_iou=cat(kept_iou, np.float32),
    )


def _first_per_group(groups: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal values in a grouped array."""
    first = np.ones(len(groups), dtype=bool)
    first[1:] = groups[1:] != groups[:-1]
    return first


def _greedy_tp(packed: _Packed, threshold: float) -> np.ndarray:
    """(P,) bool: proposals that are true positives at IoU > threshold (greedy, see docstring)."""
    is_tp = np.zeros(len(packed.conf), dtype=bool)
    hit = packed.pair_iou > np.float32(threshold)
    if not hit.any():
        return is_tp
    gt, prop, g_rank = packed.pair_gt[hit], packed.pair_prop[hit], packed.pair_g_rank[hit]
    # Segment r of a video only competes with segments 0..r-1 of the same video, so handling
    # all videos' r-th segments together, r = 0, 1, ..., reproduces the sequential rule.
    for r in range(int(g_rank.max()) + 1):
        sel = g_rank == r
        if not sel.any():
            continue
        free = ~is_tp[prop[sel]]
        gts, props = gt[sel][free], prop[sel][free]
        is_tp[props[_first_per_group(gts)]] = True
    return is_tp


def _first_hit_rank(packed: _Packed, threshold: float) -> np.ndarray:
    """(G,) rank of the first proposal of its video with IoU > threshold (int max if none)."""
    first = np.full(packed.n_gt, np.iinfo(np.int64).max, dtype=np.int64)
    hit = packed.pair_iou > np.float32(threshold)
    gt, prop = packed.pair_gt[hit], packed.pair_prop[hit]
    head = _first_per_group(gt)
    first[gt[head]] = packed.p_rank[prop[head]]
    return first


def _ap_from_sorted(tp_sorted: np.ndarray, n_labels: int) -> float:
    """AP of true-positive flags already sorted by confidence (descending)."""
    if n_labels == 0:
        return float("nan")
    acc = np.cumsum(tp_sorted, dtype=np.float64)
    precision = acc / np.arange(1, len(acc) + 1)
    recall = acc / n_labels
    x = np.concatenate([[1.0], recall[::-1]])
    y = np.concatenate([[0.0], precision[::-1]])
    y_max = np.maximum.accumulate(y)
    return float(np.sum(np.abs(np.diff(x)) * y_max[:-1]))


# ---------------------------------------------------------------------------------------
# public localisation API
def localization_metrics(
    proposals: Sequence,
    ground_truth: Sequence,
    ap_iou_thresholds: Sequence[float] = LAVDF.ap_iou_thresholds,
    ar_n_proposals: Sequence[int] = LAVDF.ar_n_proposals,
    ar_iou_thresholds: Sequence[float] = AR_IOU_THRESHOLDS,
) -> dict[str, dict]:
    """AP@IoU and AR@N over a set of videos.

    Args:
        proposals: per video, an (n, 3) array-like of ``[confidence, start_s, end_s]`` rows in
            the order the detector ranked them (the order matters, as in the references).
        ground_truth: per video (same order), an (m, 2) array-like of ``[start_s, end_s]``
            fake segments; empty for real videos.
    Returns:
        ``{"ap": {t: ap}, "ar": {n: ar}}`` with the thresholds and N as given. AP is NaN when
        there is no ground-truth segment at all.
    """
    ap_thr = [float(t) for t in ap_iou_thresholds]
    ar_thr = [float(t) for t in ar_iou_thresholds]
    ns = [int(n) for n in ar_n_proposals]
    if any(n < 1 for n in ns):
        raise ValueError(f"AR proposal counts must be >= 1, got {ns}")
    all_thr = ap_thr + (ar_thr if ns else [])
    min_thr = min(all_thr) if all_thr else 0.0
    packed = _pack(proposals, ground_truth, min_iou=min_thr)
    logger.debug("packed %d proposals, %d segments, %d candidate pairs", len(packed.conf), packed.n_gt, len(packed.pair_gt))

    ap: dict[float, float] = {}
    if ap_thr:
        if packed.n_gt == 0:
            logger.warning("no ground-truth segment in any video: AP is undefined (NaN)")
        order = np.argsort(-packed.conf, kind="stable")
        for t in ap_thr:
            ap[t] = _ap_from_sorted(_greedy_tp(packed, t)[order], packed.n_gt)

    ar: dict[int, float] = {}
    if ns:
        n_arr = np.asarray(ns, dtype=np.int64)
        recalls = np.zeros((len(ar_thr), len(ns)))
        for i, t in enumerate(ar_thr):
            first = _first_hit_rank(packed, t)
            tp = (first[:, None] < n_arr[None, :]).sum(axis=0)  # (len(ns),)
            recalls[i] = tp / packed.n_gt if packed.n_gt else 0.0
        for j, n in enumerate(ns):
            ar[n] = float(recalls[:, j].mean()) if ar_thr else float("nan")
    return {"ap": ap, "ar": ar}


def average_precision(proposals: Sequence, ground_truth: Sequence, iou_thresholds: Sequence[float]) -> dict[float, float]:
    """AP at each IoU threshold (see :func:`localization_metrics`)."""
    return localization_metrics(proposals, ground_truth, iou_thresholds, (), ())["ap"]


def average_recall(
    proposals: Sequence, ground_truth: Sequence, n_proposals: Sequence[int], iou_thresholds: Sequence[float] = AR_IOU_THRESHOLDS
) -> dict[int, float]:
    """AR@N for each N, averaged over ``iou_thresholds`` (see :func:`localization_metrics`)."""
    return localization_metrics(proposals, ground_truth, (), n_proposals, iou_thresholds)["ar"]


def evaluate_protocol(proposals: Sequence, ground_truth: Sequence, protocol: Protocol | str) -> dict[str, dict]:
    """:func:`localization_metrics` with a benchmark's published thresholds and N."""
    proto = PROTOCOLS[protocol] if isinstance(protocol, str) else protocol
    return localization_metrics(proposals, ground_truth, proto.ap_iou_thresholds, proto.ar_n_proposals, proto.ar_iou_thresholds)


# ---------------------------------------------------------------------------------------
# detection
def _check_binary(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{len(y)} labels for {len(s)} scores")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    return y, s


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x with ties given the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(_first_per_group(xs))
    ends = np.append(starts[1:], len(xs))
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (fake = positive, higher score = more fake); NaN for one class."""
    y, s = _check_binary(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        logger.warning("ROC AUC needs both real and fake videos (%d fake, %d real): NaN", n_pos, n_neg)
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Fraction of videos classified right, calling a video fake when ``score >= threshold``."""
    y, s = _check_binary(labels, scores)
    if len(y) == 0:
        return float("nan")
    return float(np.mean((s >= threshold) == y))


def equal_error_rate(labels, scores) -> tuple[float, float]:
    """Equal error rate and the score threshold where it is reached.

    Sweeps the threshold over the distinct scores (fake when ``score >= threshold``); the
    false-positive rate falls and the false-negative rate rises as the threshold grows, and
    the EER is read where they cross, interpolating linearly between the two sweep points
    on either side.
    """
    y, s = _check_binary(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    thr = np.unique(s)  # ascending
    # Count of scores >= each threshold, per class.
    pos_sorted, neg_sorted = np.sort(s[y]), np.sort(s[~y])
    tp = n_pos - np.searchsorted(pos_sorted, thr, side="left")
    fp = n_neg - np.searchsorted(neg_sorted, thr, side="left")
    fpr = np.concatenate([fp / n_neg, [0.0]])  # last point: threshold above every score
    fnr = np.concatenate([1.0 - tp / n_pos, [1.0]])
    thr = np.concatenate([thr, [np.inf]])
    diff = fpr - fnr  # non-increasing: starts >= 0 (fpr = 1, fnr = 0), ends < 0
    k = int(np.flatnonzero(diff <= 0)[0])
    if diff[k] == 0 or k == 0:
        return float((fpr[k] + fnr[k]) / 2.0), float(thr[k])
    # Crossing between k-1 (diff > 0) and k (diff < 0): linear interpolation.
    w = diff[k - 1] / (diff[k - 1] - diff[k])
    eer = fpr[k - 1] + w * (fpr[k] - fpr[k - 1])
    t_hi = thr[k] if np.isfinite(thr[k]) else thr[k - 1]
    return float(eer), float(thr[k - 1] + w * (t_hi - thr[k - 1]))


def per_category_accuracy(labels, scores, categories: Sequence[str], threshold: float = 0.5) -> dict[str, float]:
    """Accuracy within each category (e.g. FakeAVCeleb's RealVideo-FakeAudio, ...), sorted by name."""
    y, s = _check_binary(labels, scores)
    cats = np.asarray(list(categories), dtype=object)
    if len(cats) != len(y):
        raise ValueError(f"{len(cats)} categories for {len(y)} scores")
    correct = (s >= threshold) == y
    return {str(c): float(correct[cats == c].mean()) for c in sorted(set(cats.tolist()))}


def detection_metrics(labels, scores, threshold: float = 0.5, categories: Sequence[str] | None = None) -> dict:
    """AUC, accuracy at ``threshold``, EER (and per-category accuracy) in one dict."""
    eer, eer_thr = equal_error_rate(labels, scores)
    out = {
        "auc": roc_auc(labels, scores),
        "accuracy": accuracy(labels, scores, threshold),
        "threshold": float(threshold),
        "eer": eer,
        "eer_threshold": eer_thr,
        "n_videos": int(np.asarray(labels).size),
        "n_fake": int(np.asarray(labels).astype(bool).sum()),
    }
    if categories is not None:
        out["category_accuracy"] = per_category_accuracy(labels, scores, categories, threshold)
    return out


# ---------------------------------------------------------------------------------------
# LAV-DF subsets
LAVDF_SUBSETS = ("full", "visual_only", "audio_only")


def lavdf_subset_mask(modify_video: Sequence[bool], modify_audio: Sequence[bool], subset: str) -> np.ndarray:
    """Which videos belong to a LAV-DF evaluation subset.

    Follows LAV-DF's ``evaluate.py``: the subset for visual-only evaluation drops the videos
    whose *audio only* was modified (it keeps real, visual-only and both-modified videos,
    scored against their full ``fake_periods``), and the audio subset drops the visual-only
    ones. ``"full"`` keeps everything.
    """
    v = np.asarray(modify_video, dtype=bool)
    a = np.asarray(modify_audio, dtype=bool)
    if subset == "full":
        return np.ones(len(v), dtype=bool)
    if subset == "visual_only":
        return ~(a & ~v)
    if subset == "audio_only":
        return ~(v & ~a)
    raise ValueError(f"unknown LAV-DF subset {subset!r}; choose one of {LAVDF_SUBSETS}")


def summarise(results: Mapping[str, Mapping]) -> dict:
    """Make a metrics dict JSON-friendly: string keys (``"0.5"``, ``"50"``), NaN -> None."""

    def clean(v):
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v

    return clean(results)
