"""Manipulations of real footage on arrays: frames (or cached crops) and 16 kHz waveforms.

Every operation changes only a known span and returns the new arrays; the parameters it used
are plain numbers (recorded in the metadata by :mod:`avdetect.forge.families`). The same code
runs on whole decoded frames (``avdetect forge``, files for evaluation) and on the cached mouth
crops training reads (fresh forgeries every step), so the two see the same artefacts.

Geometry: a forgery is placed by the per-frame *face box* ``(x1, y1, x2, y2)`` in the pixels of
the arrays it edits. On whole frames that is the tracker's box. On a mouth crop it is the
face box implied by the crop rule of :mod:`avdetect.faces.crops` (:func:`face_box_in_mouth_crop`),
so a face blended onto a crop has its boundary where it would be in the frame (jaw and cheeks).

Visual operations:

* :func:`self_blend` -- the face blended onto a colour-, sharpness-, resolution-, scale- and
  position-jittered copy of itself through a soft, deformed hull mask (self-blended images,
  Shiohara and Yamasaki, CVPR 2022). Without landmarks the hull is an ellipse fitted to the
  face box whose radius is deformed by low-order harmonics.
* :func:`mouth_rerender` -- the lower face replaced by the lower face of other times of the
  same clip (lips no longer follow the words) passed through a low-resolution generator-like
  path (down to about 96 px, blur or sharpen, JPEG), colour-matched and blended back
  (Wav2Lip-style lip-sync forgeries, LAV-DF's re-rendered mouths).

Audio operations (16 kHz mono float32; spans in samples):

* :func:`splice` -- a span replaced by other speech (another speaker, text-to-speech, a vocoder
  resynthesis): level matched to the replaced speech, the room's noise floor added, edges
  cross-faded;
* :func:`griffin_lim` -- the same words resynthesised from their magnitude spectrogram
  (phase discarded: a neural-vocoder-like smearing);
* :func:`shift_span` -- the span's audio taken from ``shift`` samples earlier or later (the
  lips lead or lag the speech over the span only).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from avdetect.faces.crops import MOUTH_CENTER_X, MOUTH_CENTER_Y, MOUTH_SIDE, mouth_box_from_face
from avdetect.timegrid import SAMPLE_RATE, n_samples_for_duration


def face_box_in_mouth_crop(size: int) -> np.ndarray:
    """The face box, in a ``size`` x ``size`` mouth crop's pixels, that the crop rule implies
    (the mouth crop is ``MOUTH_SIDE`` x face width, centred at ``MOUTH_CENTER_*`` of the box)."""
    w = size / MOUTH_SIDE
    x1 = size / 2 - MOUTH_CENTER_X * w
    y1 = size / 2 - MOUTH_CENTER_Y * w
    return np.array([x1, y1, x1 + w, y1 + w], np.float32)


# ---------------------------------------------------------------------------------------
# masks
@dataclass
class HullShape:
    """A soft, deformed elliptical hull relative to a box: centre offset and radii as fractions
    of the box size, radial deformation by harmonics 2-4 (amplitudes, phases), feather (edge
    blur, fraction of the box width) and peak opacity."""

    cx: float = 0.5
    cy: float = 0.55
    rx: float = 0.42
    ry: float = 0.5
    amps: tuple[float, ...] = (0.0, 0.0, 0.0)
    phases: tuple[float, ...] = (0.0, 0.0, 0.0)
    feather: float = 0.06
    alpha: float = 1.0

    @classmethod
    def sample(cls, rng: np.random.Generator, cx=0.5, cy=0.55, rx=0.42, ry=0.5, deform=0.12) -> "HullShape":
        return cls(cx=cx + rng.uniform(-0.03, 0.03), cy=cy + rng.uniform(-0.03, 0.03),
                   rx=rx * rng.uniform(0.85, 1.12), ry=ry * rng.uniform(0.85, 1.12),
                   amps=tuple(float(a) for a in rng.uniform(0, deform, 3)),
                   phases=tuple(float(p) for p in rng.uniform(0, 2 * math.pi, 3)),
                   feather=float(rng.uniform(0.02, 0.12)), alpha=float(rng.uniform(0.75, 1.0)))


def hull_mask(shape: tuple[int, int], box: np.ndarray, hull: HullShape) -> np.ndarray:
    """(H, W) float32 mask in [0, alpha]: the deformed ellipse of ``hull`` placed on ``box``."""
    h, w = shape
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(1.0, x2 - x1), max(1.0, y2 - y1)
    cx, cy = x1 + hull.cx * bw, y1 + hull.cy * bh
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xx - cx) / (hull.rx * bw), (yy - cy) / (hull.ry * bh)
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    edge = np.ones_like(r)
    for k, (a, p) in enumerate(zip(hull.amps, hull.phases), start=2):
        edge += a * np.cos(k * theta + p)
    mask = (r < edge).astype(np.float32)
    sigma = max(0.5, hull.feather * bw)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return mask * np.float32(hull.alpha)


# ---------------------------------------------------------------------------------------
# visual
@dataclass
class BlendJitter:
    """How the copy a face is blended onto differs from the original."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel multiplicative colour change
    bias: float = 0.0  # brightness offset (0-255 scale)
    blur: float = 0.0  # Gaussian sigma in pixels per 100 px of face width (0: none)
    sharpen: float = 0.0  # unsharp-mask amount (0: none)
    resolution: float = 1.0  # the copy is resampled down to this fraction and back up
    scale: float = 1.0  # the copy is scaled about the face centre
    shift: tuple[float, float] = (0.0, 0.0)  # and moved, as fractions of the face box size

    @classmethod
    def sample(cls, rng: np.random.Generator, strength: float = 1.0) -> "BlendJitter":
        s = float(strength)
        blur = sharpen = 0.0
        if rng.random() < 0.5:
            blur = float(rng.uniform(0.2, 1.2) * s)
        elif rng.random() < 0.6:
            sharpen = float(rng.uniform(0.3, 1.2) * s)
        return cls(gain=tuple(float(g) for g in 1.0 + rng.uniform(-0.08, 0.08, 3) * s),
                   bias=float(rng.uniform(-10, 10) * s), blur=blur, sharpen=sharpen,
                   resolution=float(1.0 - rng.uniform(0.0, 0.55) * s) if rng.random() < 0.6 else 1.0,
                   scale=float(1.0 + rng.uniform(-0.04, 0.04) * s),
                   shift=(float(rng.uniform(-0.03, 0.03) * s), float(rng.uniform(-0.03, 0.03) * s)))


def _roi(box: np.ndarray, shape: tuple[int, int], grow: float) -> tuple[int, int, int, int] | None:
    h, w = shape
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * grow, (y2 - y1) * grow
    a, b = max(0, int(math.floor(cx - bw / 2))), max(0, int(math.floor(cy - bh / 2)))
    c, d = min(w, int(math.ceil(cx + bw / 2))), min(h, int(math.ceil(cy + bh / 2)))
    return (a, b, c, d) if c - a >= 4 and d - b >= 4 else None


def _jitter_copy(patch: np.ndarray, box_local: np.ndarray, j: BlendJitter) -> np.ndarray:
    """The jittered copy of ``patch`` (uint8 RGB) as float32."""
    h, w = patch.shape[:2]
    bw = float(box_local[2] - box_local[0])
    out = patch.astype(np.float32)
    if j.resolution < 0.999:
        sw, sh = max(2, int(round(w * j.resolution))), max(2, int(round(h * j.resolution)))
        out = cv2.resize(cv2.resize(out, (sw, sh), interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)
    if j.blur > 0:
        s = max(0.3, j.blur * bw / 100.0)
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=s, sigmaY=s)
    if j.sharpen > 0:
        soft = cv2.GaussianBlur(out, (0, 0), sigmaX=max(0.8, bw / 100.0))
        out = out + j.sharpen * (out - soft)
    out = out * np.asarray(j.gain, np.float32) + np.float32(j.bias)
    if abs(j.scale - 1.0) > 1e-4 or j.shift != (0.0, 0.0):
        cx, cy = (box_local[0] + box_local[2]) / 2, (box_local[1] + box_local[3]) / 2
        m = cv2.getRotationMatrix2D((float(cx), float(cy)), 0.0, float(j.scale))
        m[0, 2] += j.shift[0] * bw
        m[1, 2] += j.shift[1] * float(box_local[3] - box_local[1])
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def self_blend(frames: np.ndarray, boxes: np.ndarray, frames_idx: np.ndarray, jitter: BlendJitter,
               hull: HullShape) -> np.ndarray:
    """Blend the face of each frame in ``frames_idx`` onto a jittered copy of itself.

    frames: (T, H, W, 3) uint8, edited in a copy; boxes: (T, 4) face boxes. Returns the new frames.
    """
    out = frames.copy()
    H, W = frames.shape[1:3]
    for t in frames_idx:
        roi = _roi(boxes[t], (H, W), 1.5)
        if roi is None:
            continue
        a, b, c, d = roi
        box_local = boxes[t] - np.array([a, b, a, b], np.float32)
        patch = frames[t, b:d, a:c]
        src = _jitter_copy(patch, box_local, jitter)
        m = hull_mask(patch.shape[:2], box_local, hull)[..., None]
        out[t, b:d, a:c] = np.clip(m * src + (1.0 - m) * patch.astype(np.float32), 0, 255).astype(np.uint8)
    return out


@dataclass
class RenderPath:
    """The generator-like path a re-rendered mouth goes through."""

    size: int = 96  # the region is rendered at this many pixels
    blur: float = 0.0  # Gaussian sigma at that size
    sharpen: float = 0.0
    jpeg: int = 90  # JPEG quality of the rendered patch
    colour_match: bool = True

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "RenderPath":
        blur = sharpen = 0.0
        if rng.random() < 0.6:
            blur = float(rng.uniform(0.4, 1.3))
        else:
            sharpen = float(rng.uniform(0.3, 1.0))
        return cls(size=int(rng.integers(48, 113)), blur=blur, sharpen=sharpen, jpeg=int(rng.integers(35, 90)),
                   colour_match=bool(rng.random() < 0.85))


def _render(patch: np.ndarray, path: RenderPath) -> np.ndarray:
    h, w = patch.shape[:2]
    s = path.size / max(h, w)
    small = cv2.resize(patch, (max(4, int(round(w * s))), max(4, int(round(h * s)))), interpolation=cv2.INTER_AREA)
    f = small.astype(np.float32)
    if path.blur > 0:
        f = cv2.GaussianBlur(f, (0, 0), sigmaX=path.blur)
    if path.sharpen > 0:
        f = f + path.sharpen * (f - cv2.GaussianBlur(f, (0, 0), sigmaX=1.0))
    small = np.clip(f, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, int(path.jpeg)])
    if ok:
        small = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(small.shape)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def lower_face_box(face_box: np.ndarray, grow: float = 1.25) -> np.ndarray:
    """The region a lip-sync generator re-renders: the mouth box of the crop rule, enlarged."""
    m = mouth_box_from_face(np.asarray(face_box, np.float32))
    cx, cy, half = (m[0] + m[2]) / 2, (m[1] + m[3]) / 2, (m[2] - m[0]) * grow / 2
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


def mouth_rerender(frames: np.ndarray, boxes: np.ndarray, frames_idx: np.ndarray, donors: np.ndarray,
                   donor_boxes: np.ndarray, path: RenderPath, hull: HullShape) -> np.ndarray:
    """Replace the lower face of each frame in ``frames_idx`` by the lower face of ``donors[k]``
    (the k-th edited frame's donor: another time of the same clip), through ``path``.

    donors: (len(frames_idx), H', W', 3) uint8 with their face boxes ``donor_boxes``.
    """
    out = frames.copy()
    H, W = frames.shape[1:3]
    for k, t in enumerate(frames_idx):
        region = lower_face_box(boxes[t])
        roi = _roi(region, (H, W), 1.0)
        if roi is None:
            continue
        a, b, c, d = roi
        target = frames[t, b:d, a:c]
        # the donor's region, mapped onto the target region (box to box)
        src_box = lower_face_box(donor_boxes[k])
        sx = (src_box[2] - src_box[0]) / max(1.0, region[2] - region[0])
        sy = (src_box[3] - src_box[1]) / max(1.0, region[3] - region[1])
        m = np.array([[sx, 0, src_box[0] + (a - region[0]) * sx], [0, sy, src_box[1] + (b - region[1]) * sy]], np.float32)
        donor = cv2.warpAffine(donors[k], m, (c - a, d - b), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        rendered = _render(donor, path)
        tf = target.astype(np.float32)
        if path.colour_match:
            mu_t, sd_t = tf.mean(axis=(0, 1)), tf.std(axis=(0, 1)) + 1e-3
            mu_r, sd_r = rendered.mean(axis=(0, 1)), rendered.std(axis=(0, 1)) + 1e-3
            rendered = (rendered - mu_r) * np.clip(sd_t / sd_r, 0.5, 2.0) + mu_t
        local = region - np.array([a, b, a, b], np.float32)
        msk = hull_mask(target.shape[:2], local, hull)[..., None]
        out[t, b:d, a:c] = np.clip(msk * rendered + (1.0 - msk) * tf, 0, 255).astype(np.uint8)
    return out


def degrade(frames: np.ndarray, jpeg: int | None, resolution: float = 1.0) -> np.ndarray:
    """Whole-window compression (JPEG at ``jpeg`` quality) and resampling (down to
    ``resolution`` and back): applied to real and forged windows alike, so that neither
    compression nor resampling alone tells them apart."""
    if jpeg is None and resolution >= 0.999:
        return frames
    out = np.empty_like(frames)
    h, w = frames.shape[1:3]
    for t in range(len(frames)):
        f = frames[t]
        if resolution < 0.999:
            f = cv2.resize(cv2.resize(f, (max(4, int(w * resolution)), max(4, int(h * resolution))),
                                      interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)
        if jpeg is not None:
            ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
            if ok:
                f = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(f.shape)
        out[t] = f
    return out


# ---------------------------------------------------------------------------------------
# audio
FADE_S = 0.01  # cross-fade at splice edges


def _frame_rms(x: np.ndarray, hop: int = 320) -> np.ndarray:
    n = len(x) // hop
    if n == 0:
        return np.zeros(1)
    return np.sqrt(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)


def speech_level(x: np.ndarray) -> float:
    """RMS of the louder half of 20-ms frames (the speech, not the pauses)."""
    r = _frame_rms(x)
    return float(np.sqrt(np.mean(np.sort(r)[len(r) // 2:] ** 2)))


def noise_floor(x: np.ndarray) -> float:
    """RMS of the quietest tenth of 20-ms frames."""
    r = np.sort(_frame_rms(x))
    return float(np.sqrt(np.mean(r[: max(1, len(r) // 10)] ** 2)))


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` samples."""
    x = np.asarray(x, np.float32)
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


@dataclass
class SpliceParams:
    gain_db: float = 0.0  # on top of level matching
    match_floor: bool = True  # add the room's noise floor to the inserted speech

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "SpliceParams":
        return cls(gain_db=float(rng.uniform(-2.0, 2.0)), match_floor=bool(rng.random() < 0.8))


def splice(wave: np.ndarray, a: int, b: int, insert: np.ndarray, params: SpliceParams,
           rng: np.random.Generator) -> np.ndarray:
    """``wave`` with samples ``[a, b)`` replaced by ``insert`` (cut/padded to the span), level
    matched to the replaced speech, the room's noise floor added, edges cross-faded."""
    out = np.asarray(wave, np.float32).copy()
    n = b - a
    if n <= 0:
        return out
    orig = out[a:b]
    ins = fit_length(insert, n).astype(np.float64)
    ref, lev = speech_level(orig), speech_level(ins)
    if lev > 1e-6:
        ins *= (ref / lev) * 10 ** (params.gain_db / 20)
    if params.match_floor:
        floor = noise_floor(np.concatenate([out[max(0, a - SAMPLE_RATE): a], out[b: b + SAMPLE_RATE], orig]))
        ins += rng.normal(0.0, floor, n)
    f = min(n // 2, n_samples_for_duration(FADE_S))
    if f > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, f))
        ins[:f] = ins[:f] * ramp + orig[:f] * (1 - ramp)
        ins[-f:] = ins[-f:] * ramp[::-1] + orig[-f:] * (1 - ramp[::-1])
    out[a:b] = np.clip(ins, -1.0, 1.0).astype(np.float32)
    return out


def griffin_lim(x: np.ndarray, n_iter: int = 24, n_fft: int = 512, seed: int = 0, momentum: float = 0.99) -> np.ndarray:
    """``x`` resynthesised from its magnitude spectrogram by fast Griffin-Lim (phase discarded):
    random initial phases (seeded), ``n_iter`` rounds of inverse STFT / STFT with momentum, a
    Hann window of ``n_fft`` samples at hop ``n_fft // 4``, centred frames. The algorithm and
    defaults of ``librosa.griffinlim``, on ``torch.stft`` (no numba compilation at first use)."""
    import torch

    x = np.asarray(x, np.float32)
    if len(x) < n_fft:
        return x.copy()
    hop = n_fft // 4
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float32)

    def stft(y: torch.Tensor) -> torch.Tensor:  # (S,) -> (F, N) complex
        return torch.stft(y, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant",
                          return_complex=True)

    def istft(z: torch.Tensor) -> torch.Tensor:  # (F, N) complex -> (S,)
        return torch.istft(z, n_fft, hop_length=hop, window=window, center=True, length=len(x))

    mag = stft(torch.from_numpy(x)).abs()  # (F, N)
    phase = np.random.RandomState(seed).random_sample(tuple(mag.shape))
    angles = torch.polar(torch.ones_like(mag), torch.from_numpy(2 * np.pi * phase).float()) * mag  # (F, N)
    prev = None
    for _ in range(int(n_iter)):
        rebuilt = stft(istft(angles))
        angles = rebuilt - (momentum / (1 + momentum)) * prev if prev is not None else rebuilt.clone()
        angles = angles / (angles.abs() + torch.finfo(torch.float32).tiny) * mag
        prev = rebuilt
    return istft(angles).numpy().astype(np.float32)


def shift_span(wave: np.ndarray, a: int, b: int, shift: int) -> np.ndarray:
    """Samples ``[a, b)`` taken from ``[a - shift, b - shift)`` (zeros outside the wave), edges
    cross-faded: the speech over the span lags (shift > 0) or leads the lips."""
    src = np.zeros(b - a, np.float32)
    lo, hi = max(0, a - shift), min(len(wave), b - shift)
    if hi > lo:
        src[lo - (a - shift): hi - (a - shift)] = wave[lo:hi]
    out = np.asarray(wave, np.float32).copy()
    n, f = b - a, min((b - a) // 2, n_samples_for_duration(FADE_S))
    if f > 0:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0, math.pi, f))).astype(np.float32)
        src[:f] = src[:f] * ramp + out[a:a + f] * (1 - ramp)
        src[n - f:] = src[n - f:] * ramp[::-1] + out[b - f:b] * (1 - ramp[::-1])
    out[a:b] = src
    return out


def params_dict(*objs) -> dict:
    """The parameters of the given dataclasses as one flat JSON-ready dict."""
    d: dict = {}
    for o in objs:
        if o is None:
            continue
        for k, v in asdict(o).items():
            d[f"{type(o).__name__}.{k}"] = list(v) if isinstance(v, tuple) else v
    return d
