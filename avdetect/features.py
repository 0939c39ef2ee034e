"""Audio features on the 25 Hz frame grid: log-mel spectrogram with 4 hops per video frame.

Choice (documented here, used everywhere): 16 kHz mono audio, STFT window and FFT size 400
samples (25 ms, Hann), hop 160 samples (10 ms, i.e. 100 Hz), centred frames. With centring,
mel frame ``j`` is centred on sample ``160 * j``, so video frame ``i`` (samples
``[640 i, 640 (i + 1))``) owns mel frames ``4 i .. 4 i + 3``, centred at ``640 i + {0, 160,
320, 480}``. For ``T`` video frames (``T * 640`` samples) :func:`log_mel` returns exactly
``4 T`` mel frames (the one trailing frame a centred STFT produces is dropped).

The filterbank comes from ``librosa.filters.mel`` (Slaney-normalised, HTK off), the STFT from
``torch.stft``: no torchaudio (its wheels need CUDA libraries, see DESIGN.md §6). Works on
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


@functools.lru_cache(maxsize=16)
def _mel_filterbank_np(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float | None) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


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
