"""Blinks: rate and durations from the eye band of the face crops, against typical human ranges.

Signal: the mean vertical-gradient energy of the eye band (upper lid, iris and lower lid make
strong horizontal edges; a closed lid is smooth), divided by its running median over 2 s so
that head motion and lighting drift cancel. A blink is a dip below 75 % of that median lasting
2-15 frames (80-600 ms) with a face present throughout.

Typical adults blink 8-21 times a minute at rest and more while talking (about 10-30), each
blink lasting about 100-400 ms. Early face-swap generators blinked rarely; modern ones blink
normally, so an unusual rate is a weak cue and a normal one proves nothing.
"""
from __future__ import annotations

import numpy as np

from avdetect.forensics.evidence import Evidence, Track
from avdetect.forensics.features import FaceFeatures
from avdetect.forensics.signals import runs, squash
from avdetect.timegrid import FPS, frames_to_seconds

DIP = 0.75
MIN_FRAMES, MAX_FRAMES = 2, 15
RATE_RANGE = (6.0, 35.0)  # blinks per minute considered ordinary for a talking person
MIN_SECONDS = 20.0  # below this, a rate says little (a blink every 3-10 s is normal)
RELIABILITY = (
    "Blink detection uses the eye band of a frontal face box, without landmarks: glasses, hair, head "
    "turns and low resolution cause misses and false blinks, and rates over less than a minute vary a lot in real people."
)


def _running_median(x: np.ndarray, k: int) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    pad = np.pad(x, (k // 2, k - 1 - k // 2), mode="edge")
    return np.median(sliding_window_view(pad, k), axis=-1)


def blink_evidence(ff: FaceFeatures) -> tuple[list[Evidence], dict[str, Track]]:
    T = len(ff)
    valid = ff.valid
    seconds_with_face = valid.sum() / FPS
    if valid.sum() < FPS:
        return [], {}
    eye = ff.eye.astype(np.float64).copy()
    idx = np.flatnonzero(valid)
    eye[~valid] = np.interp(np.flatnonzero(~valid), idx, eye[idx]) if (~valid).any() else 0
    base = _running_median(eye, 2 * FPS + 1)
    rel = eye / np.maximum(base, 1e-6)
    blinks = []
    for s, e in runs((rel < DIP) & valid):
        if MIN_FRAMES <= e - s <= MAX_FRAMES and valid[max(0, s - 2):min(T, e + 2)].all():
            blinks.append((s, e, float(rel[s:e].min())))
    rate = len(blinks) / max(seconds_with_face / 60.0, 1e-9)
    durations = [(e - s) / FPS for s, e, _ in blinks]
    lo, hi = RATE_RANGE
    unusual = 0.0 if lo <= rate <= hi else (np.log(lo / max(rate, 0.5)) if rate < lo else np.log(rate / hi))
    weight = min(1.0, seconds_with_face / 60.0) if seconds_with_face >= MIN_SECONDS else 0.0
    strength = squash(unusual, 0.7, 1.5) * weight * 0.6
    if seconds_with_face < MIN_SECONDS:
        note = f"too little face time ({seconds_with_face:.0f} s) for the rate to mean anything"
    elif unusual == 0:
        note = "within the typical range of 6-35 per minute for a talking person"
    else:
        note = f"{'below' if rate < lo else 'above'} the typical range of 6-35 per minute for a talking person"
    ev = [Evidence(
        kind="blinks", start_s=None, end_s=None,
        value={"count": len(blinks), "rate_per_min": rate, "face_seconds": seconds_with_face,
               "mean_duration_s": float(np.mean(durations)) if durations else None,
               "times_s": [round(frames_to_seconds(s), 2) for s, _, _ in blinks][:200]},
        explanation=f"{len(blinks)} blink(s) seen in {seconds_with_face:.0f} s with a face ({rate:.0f} per minute): {note}",
        strength=strength, reliability=RELIABILITY,
    )]
    long_ones = [(s, e) for s, e, _ in blinks if (e - s) / FPS > 0.5]
    for s, e in long_ones[:10]:
        ev.append(Evidence(
            kind="blinks", start_s=frames_to_seconds(s), end_s=frames_to_seconds(e),
            value={"duration_s": (e - s) / FPS},
            explanation=f"an eye closure of {(e - s) / FPS * 1000:.0f} ms, longer than a typical blink (100-400 ms)",
            strength=0.15, reliability=RELIABILITY,
        ))
    track = Track(frames_to_seconds(np.arange(T)), {"eye_openness": rel, "valid": valid.astype(np.int8)},
                  "eye-band edge energy relative to its 2 s running median (dips = closures)")
    return ev, {"blinks": track}
