"""Audio features on the 25 Hz frame grid: log-mel spectrogram with 4 hops per video frame.

Choice (documented here, used everywhere): 16 kHz mono audio, STFT window and FFT size 400
samples (25 ms, Hann), hop 160 samples (10 ms, i.e. 100 Hz), centred frames. With centring,
mel frame ``j`` is centred on sample ``160 * j``, so video frame ``i`` (samples
``[640 i, 640 (i + 1))``) owns mel frames ``4 i .. 4 i + 3``, centred at ``640 i + {0, 160,
320, 480}``. For ``T`` video frames (``T * 640`` samples) :func:`log_mel` returns exactly
``4 T`` mel frames (the one trailing frame a centred STFT produces is dropped).

The filterbank is librosa's default one (Slaney mel scale and normalisation, computed here in
numpy, :func:`mel_filterbank`; tested equal to ``librosa.filters.mel``), the STFT is
``torch.stft``: no librosa at run time, no torchaudio (its wheels need CUDA libraries, see DESIGN.md §6). Works on
CPU and CUDA tensors and is differentiable.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from avdetect.timegrid import SAMPLE_RATE, SAMPLES_PER_FRAME

N_FFT: int = 400
HOP_LENGTH: int = 160
HOPS_PER_FRAME: int = SAMPLES_PER_FRAME // HOP_LENGTH  # 4
DEFAULT_N_MELS: int = 80
LOG_FLOOR: float = 1e-6
# Fixed standardisation of log-mel values, so that models see roughly zero-mean, unit-scale
# inputs without batch statistics (speech at normal level sits near the top, silence at
# log(LOG_FLOOR) ~ -13.8).
LOG_MEL_OFFSET: float = 6.0
LOG_MEL_SCALE: float = 4.0

assert HOPS_PER_FRAME * HOP_LENGTH == SAMPLES_PER_FRAME


# the Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4)
_MEL_LINEAR_HZ = 200.0 / 3.0
_MEL_BREAK_HZ = 1000.0
_MEL_BREAK = _MEL_BREAK_HZ / _MEL_LINEAR_HZ  # 15 mels
_MEL_LOG_STEP = float(np.log(6.4) / 27.0)


def hz_to_mel(hz):
    """Hz -> mels on the Slaney scale (as ``librosa.hz_to_mel(htk=False)``)."""
    hz = np.asarray(hz, np.float64)
    log_part = _MEL_BREAK + np.log(np.maximum(hz, _MEL_BREAK_HZ) / _MEL_BREAK_HZ) / _MEL_LOG_STEP
    return np.where(hz >= _MEL_BREAK_HZ, log_part, hz / _MEL_LINEAR_HZ)


def mel_to_hz(mel):
    """Mels on the Slaney scale -> Hz (the inverse of :func:`hz_to_mel`)."""
    mel = np.asarray(mel, np.float64)
    log_part = _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * (np.maximum(mel, _MEL_BREAK) - _MEL_BREAK))
    return np.where(mel >= _MEL_BREAK, log_part, mel * _MEL_LINEAR_HZ)


@functools.lru_cache(maxsize=16)
def _mel_filterbank_np(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float | None) -> np.ndarray:
    """Triangular filters between mel-spaced edges, each scaled to unit area (Slaney norm): the
    filterbank ``librosa.filters.mel`` makes by default (tested against it), in numpy alone so
    that detect does not import librosa."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    bins = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # (F,) Hz
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,) Hz
    width = np.diff(edges)  # (n_mels + 1,)
    dist = edges[:, None] - bins[None, :]  # (n_mels + 2, F)
    fb = np.zeros((n_mels, len(bins)), np.float32)
    for m in range(n_mels):
        rising = -dist[m] / width[m]
        falling = dist[m + 2] / width[m + 1]
        fb[m] = np.maximum(0.0, np.minimum(rising, falling))
    fb *= (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[:, None]
    return fb


def mel_filterbank(n_mels: int = DEFAULT_N_MELS, *, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Mel filterbank ``(n_mels, n_fft // 2 + 1)`` as a float32 CPU tensor (cached)."""
    return torch.from_numpy(_mel_filterbank_np(n_mels, n_fft, sample_rate, fmin, fmax).copy())


def log_mel(waveform: torch.Tensor, n_mels: int = DEFAULT_N_MELS, *, normalize: bool = True,
            filterbank: torch.Tensor | None = None) -> torch.Tensor:
    """Log-mel spectrogram on the 25 Hz grid, 4 mel frames per video frame.

    Args:
        waveform: ``(B, S)`` or ``(S,)`` float waveform at 16 kHz; ``S`` should be a multiple
            of 640 (``T`` video frames); otherwise the result has ``4 * ceil(S / 640)`` frames
            (the tail is treated as zero-padded).
        n_mels: number of mel bands.
        normalize: apply the fixed ``(x + LOG_MEL_OFFSET) / LOG_MEL_SCALE`` standardisation.
        filterbank: optional precomputed ``(n_mels, 201)`` filterbank (e.g. a module buffer on
            the right device); built with :func:`mel_filterbank` when omitted.

    Returns:
        ``(B, 4 T, n_mels)`` (or ``(4 T, n_mels)`` for 1-D input), natural log of the power
        mel spectrogram floored at ``LOG_FLOOR``.
    """
    squeeze = waveform.dim() == 1
    if squeeze:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2:
        raise ValueError(f"log_mel expects (B, S) or (S,) waveform, got shape {tuple(waveform.shape)}")
    n_frames = -(-waveform.shape[-1] // SAMPLES_PER_FRAME)
    pad = n_frames * SAMPLES_PER_FRAME - waveform.shape[-1]
    if pad:
        waveform = torch.nn.functional.pad(waveform, (0, pad))
    wave = waveform.float()
    if filterbank is None:
        filterbank = mel_filterbank(n_mels)
    fb = filterbank.to(device=wave.device, dtype=wave.dtype)
    if fb.shape != (n_mels, N_FFT // 2 + 1):
        raise ValueError(f"filterbank has shape {tuple(fb.shape)}, expected ({n_mels}, {N_FFT // 2 + 1})")
    with torch.autocast(device_type=wave.device.type, enabled=False):  # float32 even under AMP
        window = torch.hann_window(N_FFT, device=wave.device, dtype=wave.dtype)
        spec = torch.stft(wave, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=N_FFT, window=window,
                          center=True, pad_mode="constant", return_complex=True)  # (B, F, 4T + 1)
        power = spec.real.square() + spec.imag.square()
        power = power[..., : n_frames * HOPS_PER_FRAME]  # (B, F, 4T)
        mel = torch.einsum("mf,bft->btm", fb, power)  # (B, 4T, n_mels)
        out = torch.log(mel.clamp_min(LOG_FLOOR))
    if normalize:
        out = (out + LOG_MEL_OFFSET) / LOG_MEL_SCALE
    return out[0] if squeeze else out
