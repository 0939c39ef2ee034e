"""Traces that forgeries leave, applied inside a manipulated span at a tunable strength.

Visual (face space, lower-face mask): blending seams, texture smoothing, colour mismatch
(default styles) or blockiness and per-frame flicker with a misaligned paste (hold-out styles).
Audio (the replaced samples): vocoder-like magnitude smoothing, partial phase randomisation
and band limiting (default) or spectral folding and frame-held magnitudes (hold-out).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avdetect.synth.speech import istft, stft
from avdetect.timegrid import SAMPLE_RATE

VISUAL_STYLES = {"default": ("blend", "smooth", "colour"), "holdout": ("block", "flicker")}
AUDIO_STYLES = {"default": ("vocoder", "lowpass"), "holdout": ("fold", "hold")}


@dataclass(frozen=True)
class VisualArtefact:
    style: str
    strength: float
    blur: float
    colour: tuple[float, float, float]
    gain: float
    feather: float
    shift: tuple[int, int]


def sample_visual_artefact(rng: np.random.Generator, variant: str, strength: float) -> VisualArtefact:
    style = str(rng.choice(VISUAL_STYLES["holdout" if variant == "holdout" else "default"]))
    s = strength
    col = rng.uniform(-1, 1, 3) * 8 * s
    return VisualArtefact(
        style=style,
        strength=s,
        blur=float((0.4 + 1.2 * s) * (1.3 if style == "smooth" else 1.0)),
        colour=tuple(float(c) * (1.8 if style == "colour" else 1.0) for c in col),
        gain=float(1 + rng.choice([-1, 1]) * 0.08 * s),
        feather=float(rng.uniform(1.0, 3.0) if style == "blend" else rng.uniform(2.0, 5.0)),
        shift=(int(rng.integers(-2, 3)), int(rng.integers(1, 3))),
    )


def lower_face_mask(size: int, cx: float, top: float, bottom: float, half_w: float, feather: float) -> np.ndarray:
    """Feathered elliptical mask (H, W) float32 over the re-enacted lower face."""
    m = np.zeros((size, size), np.float32)
    cv2.ellipse(m, (int(round(cx)), int(round((top + bottom) / 2))), (int(half_w), int((bottom - top) / 2)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(m, (0, 0), feather)


def apply_visual(face: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], art: VisualArtefact,
                 rng: np.random.Generator) -> None:
    """Apply the artefact in place to face-space layer ``face`` (H, W, 3) float32 inside ``box``."""
    x0, y0, x1, y1 = box
    roi = face[y0:y1, x0:x1]
    m = mask[y0:y1, x0:x1, None] * min(1.0, 0.35 + art.strength)
    src = roi.copy()
    if art.style == "block":
        k = 2 + int(round(3 * art.strength))
        h, w = src.shape[:2]
        small = cv2.resize(src, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        src = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    else:
        src = cv2.GaussianBlur(src, (0, 0), art.blur)
    if art.style == "flicker":
        src = src * (1 + rng.uniform(-0.12, 0.12) * art.strength) + rng.uniform(-10, 10, 3) * art.strength
        dx, dy = art.shift
        src = np.roll(src, (dy, dx), axis=(0, 1))
    src = src * art.gain + np.array(art.colour, np.float32)
    roi[:] = roi * (1 - m) + src * m


# ---- audio ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioArtefact:
    style: str
    strength: float
    smooth_bins: int
    phase_mix: float
    cutoff: float


def sample_audio_artefact(rng: np.random.Generator, variant: str, strength: float) -> AudioArtefact:
    style = str(rng.choice(AUDIO_STYLES["holdout" if variant == "holdout" else "default"]))
    s = strength
    return AudioArtefact(
        style=style,
        strength=s,
        smooth_bins=int(1 + round(8 * s)),
        phase_mix=float(0.15 + 0.6 * s),
        cutoff=float(7600 - 3600 * s * (1.4 if style == "lowpass" else 1.0)),
    )


def apply_audio(y: np.ndarray, art: AudioArtefact, rng: np.random.Generator) -> np.ndarray:
    """Return ``y`` (float32 segment) re-synthesised with the artefact's spectral traces."""
    if len(y) < 64:
        return y.copy()
    S = stft(y)
    mag, ph = np.abs(S), np.angle(S)
    freqs = np.fft.rfftfreq((S.shape[1] - 1) * 2, 1 / SAMPLE_RATE)
    if art.smooth_bins > 1:  # vocoder: envelope-only magnitude
        k = np.ones(art.smooth_bins) / art.smooth_bins
        mag = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 1, mag)
    if art.style == "fold":  # spectral folding above 4 kHz (bandwidth-extension trace)
        hi = freqs >= 4000
        src = np.where(hi)[0] - np.sum(hi)  # bins mirrored from below
        mag[:, hi] = mag[:, np.clip(src, 0, None)] * (0.3 + 0.5 * art.strength)
    if art.style == "hold":  # frame-held magnitudes (low-rate vocoder)
        mag[1::2] = mag[0:-1:2][: mag[1::2].shape[0]]
    rand = rng.uniform(-np.pi, np.pi, ph.shape)
    ph = ph + art.phase_mix * rand
    lp = 1 / (1 + np.exp((freqs - art.cutoff) / 150.0))
    out = istft(mag * lp * np.exp(1j * ph), len(y))
    # keep loudness: the forgery is not detectably louder or quieter
    r_in, r_out = float(np.sqrt(np.mean(y ** 2))), float(np.sqrt(np.mean(out ** 2)))
    if r_out > 1e-8:
        out *= r_in / r_out
    return out.astype(np.float32)
