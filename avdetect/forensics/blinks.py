"""Blinks: rate and durations, against typical human ranges.

**With landmarks** (a landmark face backend such as ``mediapipe``): eye openness (the eye
aspect ratio of the eye contours, :func:`avdetect.faces.crops.landmark_features`) is measured
on every frame; a frame is *closed* when it falls below :data:`CLOSED_FRACTION` (0.7) of the clip's
median openness (people's open-eye ratio differs; a blink halves it or less).

**Without** (the Haar backend): OpenCV's Haar eye cascade finds open eyes and rarely closed ones. In frames with a face, a
*closure* is a run of 2-12 frames (80-480 ms) in which no eye is found, with eyes found just
before and after it; longer runs are looked-away or lost eyes, not blinks. The method is only
trusted when open eyes are found in most face frames (frontal faces, enough resolution).

Typical adults blink 8-21 times a minute at rest and more while talking (roughly 6-35 over a
minute of speech), each blink lasting about 100-400 ms. Early face-swap generators blinked
rarely; modern ones blink normally, so an unusual rate is a weak cue and a normal one proves
nothing.
"""
from __future__ import annotations

import numpy as np

from avdetect.forensics.evidence import Evidence, Track
from avdetect.forensics.features import LANDMARK_EYES_MIN, FaceFeatures
from avdetect.forensics.registry import Analysis, Inputs
from avdetect.forensics.signals import runs, squash
from avdetect.timegrid import frames_to_seconds

MIN_FRAMES, MAX_FRAMES = 2, 12  # 80-480 ms: a single missed frame is detector noise
MIN_EYE_RATE = 0.7  # open eyes must be found in this fraction of face frames to trust the counts
RATE_RANGE = (6.0, 35.0)  # blinks per minute considered ordinary for a talking person
MIN_SECONDS = 20.0  # below this, a rate says little (a blink every 3-10 s is normal)
MIN_FACE_S = 1.0  # less face time than this: no blink item at all
CLOSED_FRACTION = 0.7  # with landmarks: closed below this fraction of the median eye openness (checked by eye on 2 clips)
RELIABILITY = (
    "Blinks are counted where OpenCV's eye detector stops finding open eyes: glasses, hair, head "
    "turns, low resolution and fast motion cause misses, and rates over less than a minute vary a lot in real people."
)
RELIABILITY_LANDMARKS = (
    "Blinks are counted where the eye landmarks' openness drops below 70% of its median: squints, looking down, "
    "glasses and head turns can look like closures, and rates over less than a minute vary a lot in real people."
)


def eyes_from_openness(openness: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T,) int8 in the eye cascade's terms from landmark eye openness: 2 open, 0 closed
    (below :data:`CLOSED_FRACTION` of the median over the measured frames), -1 not measured."""
    ok = valid & np.isfinite(openness)
    out = np.full(len(openness), -1, np.int8)
    if ok.any():
        level = float(np.median(openness[ok]))
        out[ok] = np.where(openness[ok] < CLOSED_FRACTION * level, 0, 2)
    return out


def find_blinks(eyes: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) frame runs of closed eyes that look like blinks."""
    T = len(eyes)
    closed = valid & (eyes == 0)
    out = []
    for s, e in runs(closed):
        if not MIN_FRAMES <= e - s <= MAX_FRAMES or s == 0 or e >= T:
            continue
        if valid[s - 1] and valid[e] and eyes[s - 1] != 0 and eyes[e] != 0:  # -1: not looked at, next to an open frame
            out.append((s, e))
    return out


def blink_evidence(ff: FaceFeatures) -> tuple[list[Evidence], dict[str, Track]]:
    T = len(ff)
    valid = ff.valid
    face_s = frames_to_seconds(int(valid.sum()))
    if face_s < MIN_FACE_S:
        return [], {}
    openness = ff.shape[:, 2] if ff.shape is not None and len(ff.shape) == T else np.full(T, np.nan)
    landmarks = bool(valid.any()) and float(np.isfinite(openness[valid]).mean()) >= LANDMARK_EYES_MIN
    eyes = eyes_from_openness(openness, valid) if landmarks else ff.eyes
    reliability = RELIABILITY_LANDMARKS if landmarks else RELIABILITY
    looked = valid & (eyes >= 0)
    eye_rate = float((eyes[looked] > 0).mean()) if looked.any() else 0.0
    if landmarks:
        track = Track(frames_to_seconds(np.arange(T)), {"open_eyes": eyes.astype(np.int8), "face": valid.astype(np.int8),
                                                        "eye_openness": np.nan_to_num(openness).astype(np.float32)},
                      "eye openness from the eye landmarks per frame, and open (2) / closed (0) eyes against 70% of "
                      "its median (runs of 0 between open frames = blinks)")
    else:
        track = Track(frames_to_seconds(np.arange(T)), {"open_eyes": eyes.astype(np.int8), "face": valid.astype(np.int8)},
                      "open eyes found by the eye detector per frame (runs of 0 between open frames = blinks)")
    if eye_rate < MIN_EYE_RATE:
        return [Evidence(
            kind="blinks", start_s=None, end_s=None, value={"open_eye_frames": eye_rate},
            explanation=f"blinks cannot be counted: open eyes are found in only {eye_rate:.0%} of the frames with a face",
            strength=0.0, reliability=reliability,
        )], {"blinks": track}
    blinks = find_blinks(eyes, valid)
    rate = len(blinks) / (face_s / 60.0)
    durations = [frames_to_seconds(e - s) for s, e in blinks]
    lo, hi = RATE_RANGE
    unusual = 0.0 if lo <= rate <= hi else (np.log(lo / max(rate, 0.5)) if rate < lo else np.log(rate / hi))
    weight = min(1.0, face_s / 60.0) if face_s >= MIN_SECONDS else 0.0
    strength = (squash(unusual, 0.7, 1.5) if unusual > 0 else 0.0) * weight * 0.6
    if face_s < MIN_SECONDS:
        note = f"too little face time ({face_s:.0f} s) for the rate to mean much"
    elif unusual == 0:
        note = "within the typical range of 6-35 per minute for a talking person"
    else:
        note = f"{'below' if rate < lo else 'above'} the typical range of 6-35 per minute for a talking person"
    ev = [Evidence(
        kind="blinks", start_s=None, end_s=None,
        value={"count": len(blinks), "rate_per_min": rate, "face_seconds": face_s, "open_eye_frames": eye_rate,
               "mean_duration_s": float(np.mean(durations)) if durations else None,
               "method": "eye landmarks" if landmarks else "eye cascade",
               "times_s": [round(frames_to_seconds(s), 2) for s, _ in blinks][:200]},
        explanation=f"{len(blinks)} blink(s) in {face_s:.0f} s with a face ({rate:.0f} per minute): {note}",
        strength=strength, reliability=reliability,
    )]
    return ev, {"blinks": track}


def _run(inputs: Inputs) -> tuple[list[Evidence], dict[str, Track]]:
    return blink_evidence(inputs.faces)


BLINKS = Analysis(name="blinks", kinds=("blinks",), labels={"blinks": "blinks"}, needs=("faces",), run=_run)
