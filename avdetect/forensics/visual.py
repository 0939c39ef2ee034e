"""Visual temporal cues: change points in the face region and face-track jumps.

A replaced or re-rendered span of video changes how the face is *made* even when it shows the
same person: sharpness (a generator or a re-encode blurs or sharpens), colour statistics of the
skin, the strength of edges along the boundary where a swapped face is blended in (the seam),
and flicker (the face's brightness changing while its surroundings do not). Each feature is a
per-frame series (:mod:`avdetect.forensics.features`); two-window change scores (1 s each side)
find the points where the face region changes its character, and pairs whose outsides agree
are reported as one span. Face-track jumps (the box leaps, changes size abruptly or another
track takes over) are reported as facts: they are also what a cut in genuine footage does.
"""
from __future__ import annotations

import numpy as np

from avdetect.forensics.evidence import Evidence, Track
from avdetect.forensics.features import FaceFeatures
from avdetect.forensics.registry import Analysis, Inputs, LaneSeries
from avdetect.forensics.signals import change_scores, moving_average, pick_peaks, squash
from avdetect.timegrid import frames_to_seconds, seconds_to_frames_round

WINDOW_S = 1.0
MAX_SPAN_S = 60.0  # two change points further apart than this are not paired into a span
THRESHOLD = 3.0
STRONG = 6.0
NAMES = ["sharpness", "luma", "chroma Cr", "chroma Cb", "seam", "flicker"]
RELIABILITY = (
    "Face-region change points also follow lighting changes, camera refocus, head turns and cuts; "
    "they say where the face's rendering changes, not that it is fake."
)


def _flicker(ff: FaceFeatures) -> np.ndarray:
    """Frame-to-frame change of the face's brightness that its surroundings do not share."""
    rel = ff.color[:, 0] - ff.ring_luma
    d = np.abs(np.diff(rel, prepend=rel[:1]))
    return moving_average(d, 5)


def visual_change_evidence(ff: FaceFeatures) -> tuple[list[Evidence], dict[str, Track]]:
    T = len(ff)
    w = seconds_to_frames_round(WINDOW_S)
    ev: list[Evidence] = []
    if T < 2 * w + 2 or ff.valid.sum() < 2 * w:
        return ev, {}
    flick = _flicker(ff)
    feats = np.column_stack([ff.sharpness, ff.color, ff.seam, flick])
    valid = ff.valid.copy()
    # measurement-noise floors: typical frame-to-frame variation over the clip
    diffs = np.abs(np.diff(feats[valid], axis=0)) if valid.sum() > 2 else np.ones((1, feats.shape[1]))
    floor = np.maximum(np.median(diffs, axis=0) * 2.0, [0.05, 1.0, 0.5, 0.5, 0.02, 0.5])
    per_feature = np.column_stack([change_scores(feats[:, [j]], valid, w, floor=floor[[j]]) for j in range(feats.shape[1])])
    score = moving_average(np.sqrt(np.mean(per_feature**2, axis=1)), 3)
    times = frames_to_seconds(np.arange(T))
    tracks = {"visual_change": Track(times, {"change_score": score, **{n: per_feature[:, j] for j, n in enumerate(NAMES)}},
                                     "per-frame change scores of the face region (1 s either side)")}
    peaks = pick_peaks(score, THRESHOLD, min_distance=w)
    for p in peaks:
        top = [NAMES[j] for j in np.argsort(-per_feature[p])[:2] if per_feature[p, j] >= THRESHOLD * 0.7]
        t = frames_to_seconds(p)
        ev.append(Evidence(
            kind="visual_change", start_s=max(0.0, t - 0.2), end_s=min(frames_to_seconds(T), t + 0.2),
            value={"change_score": float(score[p]), **{n: float(per_feature[p, j]) for j, n in enumerate(NAMES)}},
            explanation=(f"the face region changes its character at {t:.2f} s ({', '.join(top) or 'several features'}): "
                         f"a possible start or end of a replaced or re-rendered span, or a lighting or camera change"),
            strength=squash(float(score[p]), STRONG, STRONG * 2), reliability=RELIABILITY,
        ))
    # pairs: a span whose inside differs from both sides while the sides agree
    for a, b in zip(peaks, peaks[1:]):
        if b - a > seconds_to_frames_round(MAX_SPAN_S):
            continue
        ins = valid.copy()
        ins[:a] = False
        ins[b:] = False
        lft = np.zeros(T, bool)
        lft[max(0, a - 2 * w):a] = valid[max(0, a - 2 * w):a]
        rgt = np.zeros(T, bool)
        rgt[b:min(T, b + 2 * w)] = valid[b:min(T, b + 2 * w)]
        if min(ins.sum(), lft.sum(), rgt.sum()) < 5:
            continue
        m_in, m_l, m_r = (np.median(feats[m], 0) for m in (ins, lft, rgt))
        d_in = float(np.sqrt(np.mean(((m_in - 0.5 * (m_l + m_r)) / floor) ** 2)))
        d_lr = float(np.sqrt(np.mean(((m_l - m_r) / floor) ** 2)))
        if d_in > 2 * d_lr and d_in > THRESHOLD:
            t0, t1 = frames_to_seconds(a), frames_to_seconds(b)
            ev.append(Evidence(
                kind="visual_change", start_s=t0, end_s=t1,
                value={"inside_vs_outside": d_in, "left_vs_right": d_lr},
                explanation=(f"the face between {t0:.2f} s and {t1:.2f} s looks different (sharpness, colour, seam) from the "
                             f"face on both sides, which agree with each other: a possible replaced span"),
                strength=squash(min(score[a], score[b]), THRESHOLD + 1, STRONG + 1), reliability=RELIABILITY,
            ))
    return ev, tracks


def track_jump_evidence(ff: FaceFeatures) -> list[Evidence]:
    """Frames where the main face's box jumps, changes size abruptly, or the track changes."""
    ev: list[Evidence] = []
    idx = np.flatnonzero(ff.valid)
    if len(idx) < 2:
        return ev
    b = ff.boxes[idx]
    size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    centre = np.column_stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2])
    move = np.hypot(*np.diff(centre, axis=0).T) / np.maximum(size[:-1], 1.0)
    ratio = np.maximum(size[1:], 1.0) / np.maximum(size[:-1], 1.0)
    new_track = ff.track_ids[idx[1:]] != ff.track_ids[idx[:-1]]
    gap = idx[1:] - idx[:-1]
    jumps = (move > 0.35) | (np.abs(np.log(ratio)) > np.log(1.3)) | new_track
    for k in np.flatnonzero(jumps)[:50]:
        f0, f1 = int(idx[k]), int(idx[k + 1])
        why = "another face track takes over" if new_track[k] else (
            f"the face box moves {move[k]:.0%} of its size" if move[k] > 0.35 else f"the face size changes by {ratio[k]:.2f}x")
        ev.append(Evidence(
            kind="face_track_jump", start_s=frames_to_seconds(f0), end_s=frames_to_seconds(f1 + 1),
            value={"move_rel": float(move[k]), "size_ratio": float(ratio[k]), "new_track": bool(new_track[k]), "gap_frames": int(gap[k])},
            explanation=f"between {frames_to_seconds(f0):.2f} s and {frames_to_seconds(f1 + 1):.2f} s {why}: a cut, a fast movement, or an edit",
            strength=0.3 if new_track[k] else 0.2,
            reliability="cuts and fast head or camera motion in genuine footage cause the same jumps; the Haar tracker also loses profile faces",
        ))
    return ev


def _run(inputs: Inputs) -> tuple[list[Evidence], dict[str, Track]]:
    ev, tracks = visual_change_evidence(inputs.faces)
    return ev + track_jump_evidence(inputs.faces), tracks


VISUAL = Analysis(
    name="visual", kinds=("visual_change", "face_track_jump"),
    labels={"visual_change": "face-region change", "face_track_jump": "face track jump"}, needs=("faces",), run=_run,
    series={"visual_change": LaneSeries("visual_change", ("change_score",), 8.0, "max", note="change scores")},
    min_face_coverage=0.0,  # any frame with a face: change points and jumps are local
)
