"""The one time grid: seconds <-> 25 Hz video frames <-> 16 kHz audio samples.

Everything inside avdetect is indexed on the 25 fps frame grid (40 ms per frame); audio is
mono at 16 kHz, i.e. exactly 640 samples per frame. Public outputs are in seconds. These
helpers are the only place that converts between the units: ``tests/test_timegrid.py`` fails
on ``* FPS``, ``/ FPS``, ``* SAMPLE_RATE``... written anywhere else in the package, the recipes
or the benchmarks (a line that is not a time conversion, e.g. Hz -> cycles per sample, says so
with a trailing ``# not time: <reason>``).

One rounding rule per direction and meaning:

* seconds -> the frame holding an instant: floor (:func:`seconds_to_frame`);
* seconds -> a frame boundary (segment edges) or a frame count (durations): nearest
  (:func:`seconds_to_frames_round`, :func:`n_frames_for_duration`);
* seconds -> samples: nearest (:func:`n_samples_for_duration`);
* samples -> frames: floor (:func:`samples_to_frames`); frames -> samples and frames ->
  seconds are exact.

Frame ``i`` covers the half-open interval ``[i / FPS, (i + 1) / FPS)`` seconds.
"""
from __future__ import annotations

import math

import numpy as np

FPS: int = 25
SAMPLE_RATE: int = 16_000
SAMPLES_PER_FRAME: int = SAMPLE_RATE // FPS  # 640
FRAME_SECONDS: float = 1.0 / FPS


def frames_to_seconds(frames):
    """Frame index (or count) -> seconds. Works on scalars and numpy arrays."""
    if isinstance(frames, np.ndarray):
        return frames.astype(np.float64) / FPS
    return float(frames) / FPS


def frames_at_rate_to_seconds(frames, fps: float):
    """Frame numbers of a foreign grid (``fps`` frames per second, e.g. the frame units of
    LAV-DF's own prediction files) -> seconds. Scalars and numpy arrays."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if isinstance(frames, np.ndarray):
        return frames.astype(np.float64) / float(fps)
    return float(frames) / float(fps)


def seconds_to_frame(seconds: float) -> int:
    """Seconds -> index of the frame that contains that instant (floor)."""
    return int(math.floor(seconds * FPS + 1e-9))


def seconds_to_frames_round(seconds):
    """Seconds -> nearest frame boundary (used for segment edges). Scalars and arrays."""
    if isinstance(seconds, np.ndarray):
        return np.rint(seconds * FPS).astype(np.int64)
    return int(round(seconds * FPS))


def n_frames_for_duration(seconds: float) -> int:
    """Number of grid frames for a stream lasting ``seconds`` (nearest frame count)."""
    return max(0, int(round(seconds * FPS)))


def n_samples_for_duration(seconds: float) -> int:
    """Number of 16 kHz samples for a stream lasting ``seconds``."""
    return max(0, int(round(seconds * SAMPLE_RATE)))


def samples_to_seconds(samples):
    """Sample index (or count) -> seconds. Works on scalars and numpy arrays."""
    if isinstance(samples, np.ndarray):
        return samples.astype(np.float64) / SAMPLE_RATE
    return float(samples) / SAMPLE_RATE


def frame_to_sample(frame: int) -> int:
    """First audio sample of a video frame (also: samples in ``frame`` whole frames)."""
    return int(frame) * SAMPLES_PER_FRAME


def samples_to_frames(samples: int) -> int:
    """Whole frames in ``samples`` audio samples (floor); also the frame holding sample ``samples``."""
    return int(samples) // SAMPLES_PER_FRAME


def format_timestamp(seconds: float, sep: str = ".") -> str:
    """Seconds -> ``HH:MM:SS.mmm`` (WebVTT style; ``sep=','`` gives SRT style)."""
    ms = int(round(max(0.0, seconds) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"
