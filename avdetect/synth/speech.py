"""Offline speech: a source-filter formant synthesiser of syllable sequences.

An utterance is planned as words of consonant-vowel syllables with pauses; each phone has
formant targets, a voicing/noise mix and a mouth-opening/width target. The plan is turned
into control tracks on a 4 ms grid (smoothed so that formants and the mouth glide), the
glottal pulse train (pitch contour, jitter, shimmer) and noise are filtered by the formant
envelope in the STFT domain, and the mouth track is resampled to the 25 fps video grid.
Because sound and mouth come from the same phones, lip-sync is learnable.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avdetect.timegrid import SAMPLE_RATE, SAMPLES_PER_FRAME, n_samples_for_duration, samples_to_seconds

HOP = 64  # control-track hop (4 ms at 16 kHz); 10 hops per video frame
N_FFT = 512
STFT_HOP = 128

# vowel: (F1, F2, F3, opening, width)
VOWELS = {
    "a": (730, 1090, 2440, 1.00, 1.00),
    "ae": (660, 1720, 2410, 0.85, 1.08),
    "e": (530, 1840, 2480, 0.60, 1.06),
    "i": (280, 2250, 2950, 0.25, 1.12),
    "o": (570, 840, 2410, 0.70, 0.72),
    "u": (310, 870, 2240, 0.30, 0.62),
    "er": (490, 1350, 1690, 0.45, 0.88),
}
# consonant: (kind, voiced, noise_lo, noise_hi, opening, width, F1, F2)
# kind: stop, fric, nasal, approx
CONSONANTS = {
    "p": ("stop", False, 500, 3000, 0.0, 0.95, 300, 900),
    "b": ("stop", True, 300, 2500, 0.0, 0.95, 300, 900),
    "m": ("nasal", True, 0, 0, 0.0, 0.95, 260, 1000),
    "t": ("stop", False, 2500, 6500, 0.22, 1.0, 350, 1700),
    "d": ("stop", True, 2000, 5500, 0.22, 1.0, 350, 1700),
    "k": ("stop", False, 1500, 4000, 0.30, 1.0, 350, 1900),
    "g": ("stop", True, 1200, 3500, 0.30, 1.0, 350, 1900),
    "n": ("nasal", True, 0, 0, 0.18, 1.0, 280, 1500),
    "s": ("fric", False, 4000, 7800, 0.15, 1.05, 350, 1700),
    "z": ("fric", True, 3800, 7500, 0.15, 1.05, 350, 1700),
    "sh": ("fric", False, 2000, 6000, 0.22, 0.75, 350, 1800),
    "f": ("fric", False, 1500, 7800, 0.08, 0.95, 350, 1100),
    "v": ("fric", True, 1200, 7000, 0.08, 0.95, 350, 1100),
    "h": ("fric", False, 500, 4000, 0.45, 1.0, 600, 1500),
    "l": ("approx", True, 0, 0, 0.30, 1.0, 360, 1300),
    "r": ("approx", True, 0, 0, 0.25, 0.80, 420, 1200),
    "w": ("approx", True, 0, 0, 0.15, 0.60, 300, 700),
    "y": ("approx", True, 0, 0, 0.20, 1.10, 280, 2200),
}
_ONSETS = list(CONSONANTS)
_CODAS = ["n", "m", "s", "t", "k", "l", "r", "d", "z", "sh"]


@dataclass(frozen=True)
class Voice:
    """A speaker's voice: pitch, vocal-tract length, timing and quality."""

    voice_id: str
    f0: float  # mean pitch (Hz)
    f0_range: float  # intonation range (semitones)
    formant_scale: float  # >1: shorter vocal tract (higher formants)
    rate: float  # syllables per second
    breath: float  # aspiration noise share
    tilt: float  # spectral tilt (dB per octave above 500 Hz, negative)
    jitter: float
    shimmer: float


def sample_voice(rng: np.random.Generator, voice_id: str, variant: str = "default") -> Voice:
    """Draw a voice. The hold-out variant uses pitch / tract ranges the default never uses."""
    female = rng.random() < 0.5
    if variant == "holdout":
        f0 = rng.uniform(140, 165) if female else rng.uniform(70, 88)  # in the default's gaps
        scale = rng.uniform(1.20, 1.28) if female else rng.uniform(0.82, 0.88)
    else:
        f0 = rng.uniform(175, 250) if female else rng.uniform(92, 135)
        scale = rng.uniform(1.08, 1.18) if female else rng.uniform(0.9, 1.02)
    return Voice(
        voice_id=voice_id,
        f0=float(f0),
        f0_range=float(rng.uniform(2.0, 6.0)),
        formant_scale=float(scale),
        rate=float(rng.uniform(3.8, 5.8)),
        breath=float(rng.uniform(0.02, 0.12)),
        tilt=float(rng.uniform(-9.0, -4.0)),
        jitter=float(rng.uniform(0.002, 0.012)),
        shimmer=float(rng.uniform(0.02, 0.08)),
    )


@dataclass
class Phone:
    symbol: str  # vowel/consonant symbol or "_" for silence
    start: float  # seconds, relative to the utterance start
    end: float


@dataclass
class Utterance:
    """A planned utterance: phones, word spans, total duration (seconds)."""

    duration: float
    phones: list[Phone] = field(default_factory=list)
    words: list[tuple[float, float]] = field(default_factory=list)


def plan_utterance(rng: np.random.Generator, voice: Voice, duration: float, lead: float = 0.15, tail: float = 0.1) -> Utterance:
    """Fill ``duration`` seconds with words (leading/trailing silence ``lead``/``tail``)."""
    utt = Utterance(duration=duration)
    t = 0.0
    if lead > 0:
        utt.phones.append(Phone("_", 0.0, lead))
        t = lead
    syl = 1.0 / voice.rate
    vowels = list(VOWELS)
    end_limit = duration - tail
    while t < end_limit - 0.12:
        n_syl = int(rng.choice([1, 1, 2, 2, 2, 3]))
        w_start = t
        for _ in range(n_syl):
            d = syl * rng.uniform(0.75, 1.3)
            parts: list[tuple[str, float]] = []
            if rng.random() < 0.8:
                parts.append((str(rng.choice(_ONSETS)), 0.3))
            parts.append((str(rng.choice(vowels)), 0.55 if parts else 0.8))
            if rng.random() < 0.3:
                parts.append((str(rng.choice(_CODAS)), 0.25))
            tot = sum(p[1] for p in parts)
            for sym, share in parts:
                pd = d * share / tot
                if t + pd > end_limit:
                    pd = end_limit - t
                if pd <= 0.01:
                    break
                utt.phones.append(Phone(sym, t, t + pd))
                t += pd
            if t >= end_limit - 0.01:
                break
        utt.words.append((w_start, t))
        gap = rng.choice([0.0, 0.0, 0.03, 0.06, rng.uniform(0.15, 0.45)])
        gap = min(float(gap), max(0.0, end_limit - t))
        if gap > 0:
            utt.phones.append(Phone("_", t, t + gap))
            t += gap
    if t < duration:
        utt.phones.append(Phone("_", t, duration))
    return utt


@dataclass
class Tracks:
    """Control tracks on the HOP grid (length n_hops)."""

    f0: np.ndarray
    voiced: np.ndarray
    noise: np.ndarray
    noise_lo: np.ndarray
    noise_hi: np.ndarray
    formants: np.ndarray  # (n_hops, 4)
    opening: np.ndarray
    width: np.ndarray


def _smooth(x: np.ndarray, hops: int) -> np.ndarray:
    """Gaussian smoothing along axis 0 with sigma ``hops`` (edge-padded)."""
    if hops <= 0:
        return x
    r = int(3 * hops)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / hops) ** 2)
    k /= k.sum()
    pad = [(r, r)] + [(0, 0)] * (x.ndim - 1)
    xp = np.pad(x, pad, mode="edge")
    if x.ndim == 1:
        return np.convolve(xp, k, mode="valid")
    return np.stack([np.convolve(xp[:, j], k, mode="valid") for j in range(x.shape[1])], axis=1)


def control_tracks(utt: Utterance, voice: Voice, rng: np.random.Generator) -> Tracks:
    """Turn the phone plan into smoothed control tracks."""
    n = int(np.ceil(utt.duration * SAMPLE_RATE / HOP))
    f1 = np.full(n, 500.0)
    f2 = np.full(n, 1500.0)
    f3 = np.full(n, 2500.0)
    voiced = np.zeros(n)
    noise = np.zeros(n)
    lo = np.full(n, 1000.0)
    hi = np.full(n, 4000.0)
    op = np.zeros(n)
    wd = np.ones(n)
    for ph in utt.phones:
        a, b = int(ph.start * SAMPLE_RATE / HOP), int(ph.end * SAMPLE_RATE / HOP)
        if b <= a:
            continue
        s = slice(a, b)
        if ph.symbol == "_":
            continue
        if ph.symbol in VOWELS:
            F1, F2, F3, o, w = VOWELS[ph.symbol]
            f1[s], f2[s], f3[s] = F1, F2, F3
            voiced[s] = 0.55 + 0.45 * o  # open vowels are intrinsically louder
            op[s], wd[s] = o, w
            continue
        kind, is_voiced, nlo, nhi, o, w, F1, F2 = CONSONANTS[ph.symbol]
        f1[s], f2[s], f3[s] = F1, F2, 2500
        op[s], wd[s] = o, w
        if kind == "stop":
            m = b - a
            closure = a + int(m * 0.6)
            voiced[a:closure] = 0.12 if is_voiced else 0.0  # voice bar during the closure
            noise[closure:b] = 0.5  # release burst
            lo[s], hi[s] = nlo, nhi
            op[closure:b] = max(o, 0.15)
        elif kind == "fric":
            noise[s] = 0.45 if ph.symbol in ("s", "z", "sh") else 0.2
            voiced[s] = 0.15 if is_voiced else 0.0
            lo[s], hi[s] = nlo, nhi
        elif kind == "nasal":
            voiced[s] = 0.2
        else:
            voiced[s] = 0.4
    sc = voice.formant_scale
    formants = np.stack([f1 * sc, f2 * sc, f3 * sc, np.full(n, 3500.0 * sc)], axis=1)
    formants = _smooth(formants, 5)  # ~20 ms glides
    voiced = _smooth(voiced, 2)
    noise = _smooth(noise, 1)
    # pitch: declination over each breath group + accents + jitter
    t = samples_to_seconds(np.arange(n) * HOP)
    semis = voice.f0_range * (0.5 - t / max(utt.duration, 1e-3) * 0.6)
    accents = np.zeros(n)
    for w0, w1 in utt.words:
        if rng.random() < 0.5:
            c = (w0 + w1) / 2
            accents += rng.uniform(0.5, 1.0) * voice.f0_range * np.exp(-0.5 * ((t - c) / 0.08) ** 2)
    f0 = voice.f0 * 2 ** ((semis + accents) / 12.0)
    f0 *= 1 + voice.jitter * rng.standard_normal(n)
    f0 = _smooth(f0, 1)
    # mouth: targets smoothed like an articulator (~50 ms), jaw wobble
    op = np.clip(_smooth(op, 10) * rng.uniform(0.85, 1.1), 0, 1)
    wd = _smooth(wd, 10)
    return Tracks(f0, voiced, noise, _smooth(lo, 2), _smooth(hi, 2), formants, op, wd)


def _stft(x: np.ndarray) -> np.ndarray:
    win = np.hanning(N_FFT + 1)[:-1]
    pad = np.pad(x, (N_FFT // 2, N_FFT // 2 + STFT_HOP))
    n_frames = 1 + (len(pad) - N_FFT) // STFT_HOP
    idx = np.arange(N_FFT)[None, :] + STFT_HOP * np.arange(n_frames)[:, None]
    return np.fft.rfft(pad[idx] * win, axis=1)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    win = np.hanning(N_FFT + 1)[:-1]
    frames = np.fft.irfft(spec, n=N_FFT, axis=1) * win
    n = (spec.shape[0] - 1) * STFT_HOP + N_FFT
    out = np.zeros(n)
    norm = np.zeros(n)
    for i in range(spec.shape[0]):  # overlap-add (a few hundred frames)
        out[i * STFT_HOP:i * STFT_HOP + N_FFT] += frames[i]
        norm[i * STFT_HOP:i * STFT_HOP + N_FFT] += win ** 2
    out /= np.maximum(norm, 1e-6)
    return out[N_FFT // 2:N_FFT // 2 + length]


def stft(x: np.ndarray) -> np.ndarray:
    """Complex STFT (frames, N_FFT//2+1) used by the synthesiser and the audio artefacts."""
    return _stft(np.asarray(x, np.float64))


def istft(spec: np.ndarray, length: int) -> np.ndarray:
    return _istft(spec, length)


def _track_at(track: np.ndarray, n_frames: int) -> np.ndarray:
    """Resample a HOP-grid track to the STFT frame grid."""
    pos = np.arange(n_frames) * STFT_HOP / HOP
    return np.interp(pos, np.arange(len(track)), track)


def synthesize(utt: Utterance, voice: Voice, rng: np.random.Generator, tracks: Tracks | None = None) -> tuple[np.ndarray, Tracks]:
    """Render an utterance to a float32 waveform at 16 kHz (peak ~0.5) and its tracks."""
    tr = tracks if tracks is not None else control_tracks(utt, voice, rng)
    n = n_samples_for_duration(utt.duration)
    hop_pos = np.arange(n) / HOP
    f0 = np.interp(hop_pos, np.arange(len(tr.f0)), tr.f0)
    phase = np.cumsum(f0 / SAMPLE_RATE)  # not time: cycles per sample
    frac = phase - np.floor(phase)
    # glottal flow derivative-like pulse: smooth opening, sharp closure
    open_q = 0.6
    pulse = np.where(frac < open_q, 0.5 * (1 - np.cos(np.pi * frac / open_q)), np.cos(0.5 * np.pi * (frac - open_q) / (1 - open_q)))
    src = np.diff(pulse, prepend=pulse[0]) * 20.0
    period_idx = np.floor(phase).astype(np.int64)
    shim = 1 + voice.shimmer * rng.standard_normal(period_idx[-1] + 2 if n else 2)
    src *= shim[period_idx]
    vamp = np.interp(hop_pos, np.arange(len(tr.voiced)), tr.voiced)
    src = src * vamp + voice.breath * vamp * rng.standard_normal(n)
    nz = rng.standard_normal(n) * np.interp(hop_pos, np.arange(len(tr.noise)), tr.noise)

    S_v = _stft(src)
    S_n = _stft(nz)
    nf = S_v.shape[0]
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)[None, :]  # (1, F)
    fm = np.stack([_track_at(tr.formants[:, k], nf) for k in range(4)], axis=1)  # (T, 4)
    bw = np.array([80.0, 110.0, 160.0, 250.0])
    gains = np.array([1.0, 0.6, 0.3, 0.15])
    env = np.zeros((nf, freqs.shape[1]))
    for k in range(4):
        env += gains[k] / (1 + ((freqs - fm[:, k:k + 1]) / (bw[k] / 2)) ** 2)
    tilt = 10 ** (voice.tilt * np.log2(np.maximum(freqs, 500.0) / 500.0) / 20.0)
    env = env * tilt + 0.01
    lo = _track_at(tr.noise_lo, nf)[:, None]
    hi = _track_at(tr.noise_hi, nf)[:, None]
    band = 1 / (1 + np.exp(-(freqs - lo) / 200.0)) / (1 + np.exp((freqs - hi) / 400.0))
    # loudness follows the phone's voicing amplitude, not where the formants happen to sit
    # relative to the strong low harmonics (otherwise close vowels would come out loudest)
    V = S_v * env
    ratio = np.sqrt((np.abs(V) ** 2).mean(1) + 1e-12) / np.sqrt((np.abs(S_v) ** 2).mean(1) + 1e-12)
    ratio = _smooth(ratio, 2)
    V /= ratio[:, None] / np.median(ratio)
    y = _istft(V + S_n * band * 0.02, n)
    peak = np.max(np.abs(y)) if n else 0.0
    if peak > 0:
        y = y * (0.5 / peak)
    return y.astype(np.float32), tr


def mouth_per_frame(tr: Tracks, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Mouth opening and width per 25 fps video frame (mean over each frame's 40 ms)."""
    per = SAMPLES_PER_FRAME // HOP  # 10 hops per frame
    need = n_frames * per
    op = np.pad(tr.opening, (0, max(0, need - len(tr.opening))), mode="edge")[:need]
    wd = np.pad(tr.width, (0, max(0, need - len(tr.width))), mode="edge")[:need]
    return op.reshape(n_frames, per).mean(1), wd.reshape(n_frames, per).mean(1)


__all__ = ["Voice", "Utterance", "Phone", "Tracks", "sample_voice", "plan_utterance", "control_tracks",
           "synthesize", "mouth_per_frame", "stft", "istft"]
