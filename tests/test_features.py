"""log-mel on the 25 Hz grid: shape contract, agreement with a numpy STFT and librosa's mel bank, time alignment."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avdetect.features import HOP_LENGTH, HOPS_PER_FRAME, LOG_FLOOR, N_FFT, log_mel
from avdetect.timegrid import SAMPLE_RATE, SAMPLES_PER_FRAME


def test_four_mel_frames_per_video_frame():
    wave = torch.randn(3, 7 * SAMPLES_PER_FRAME)
    assert HOPS_PER_FRAME == 4
    assert log_mel(wave, 40).shape == (3, 28, 40)
    assert log_mel(wave[0], 40).shape == (28, 40)
    # a length that is not a whole number of frames is zero-padded to the next frame
    assert log_mel(wave[:, :-100], 40).shape == (3, 28, 40)
    with pytest.raises(ValueError):
        log_mel(torch.zeros(1, 2, 640))


def _reference_log_mel(y: np.ndarray, n_mels: int) -> np.ndarray:
    """``librosa.feature.melspectrogram(center=True, pad_mode="constant", power=2)`` then the log,
    written out with numpy/scipy: zero-pad n_fft / 2 each side, periodic Hann, one frame per hop,
    |rfft|^2, librosa's (numpy-only) mel bank. ``librosa.stft`` would compile numba kernels for
    20-50 s on a cold cache. (4 T + 1, n_mels)."""
    import librosa
    from scipy.signal import get_window

    pad = np.pad(y.astype(np.float64), N_FFT // 2)
    n = 1 + (len(pad) - N_FFT) // HOP_LENGTH
    frames = pad[np.arange(n)[:, None] * HOP_LENGTH + np.arange(N_FFT)[None, :]]  # (4T + 1, N_FFT)
    power = np.abs(np.fft.rfft(frames * get_window("hann", N_FFT, fftbins=True), axis=1)) ** 2  # (4T + 1, 201)
    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels)  # Slaney, as librosa's default
    return np.log(np.maximum(power @ fb.T, LOG_FLOOR))


def test_matches_librosa_melspectrogram():
    rng = np.random.default_rng(0)
    t = np.arange(5 * SAMPLES_PER_FRAME) / SAMPLE_RATE
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ref = _reference_log_mel(y, 64)[: 5 * HOPS_PER_FRAME]
    ours = log_mel(torch.from_numpy(y), 64, normalize=False).numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_mel_frames_are_aligned_with_video_frames():
    """A click in video frame i shows up in mel frames 4i .. 4i+3 (plus window spill-over)."""
    n_frames, i = 10, 6
    wave = torch.zeros(n_frames * SAMPLES_PER_FRAME)
    centre = i * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2
    wave[centre - 40: centre + 40] = 1.0
    energy = log_mel(wave, 40, normalize=False).exp().sum(dim=1)  # (4T,)
    loud = torch.nonzero(energy > 0.01 * energy.max()).flatten()
    assert loud.min() >= 4 * i - 1 and loud.max() <= 4 * i + 4
    assert int(energy.argmax()) in {4 * i + 1, 4 * i + 2}


def test_silence_is_floored_and_gradients_flow():
    wave = torch.zeros(1, 2 * SAMPLES_PER_FRAME, requires_grad=True)
    out = log_mel(wave, 20, normalize=False)
    assert torch.allclose(out, torch.full_like(out, float(np.log(LOG_FLOOR))))
    noisy = (0.1 * torch.randn(1, 2 * SAMPLES_PER_FRAME)).requires_grad_()
    log_mel(noisy, 20).sum().backward()
    assert torch.isfinite(noisy.grad).all() and noisy.grad.abs().sum() > 0


@pytest.mark.parametrize("n_mels, n_fft, sr, fmin, fmax", [(80, 400, 16000, 0.0, None), (64, 512, 16000, 50.0, 7600.0),
                                                          (128, 1024, 22050, 0.0, None)])
def test_filterbank_is_librosas_bit_for_bit(n_mels, n_fft, sr, fmin, fmax):
    """The numpy filterbank (detect imports no librosa) is librosa.filters.mel's default one."""
    librosa = pytest.importorskip("librosa")
    from avdetect.features import _mel_filterbank_np

    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_array_equal(_mel_filterbank_np(n_mels, n_fft, sr, fmin, fmax), ref)


def test_detect_path_does_not_import_librosa():
    import subprocess
    import sys

    code = ("import sys, torch; from avdetect.features import log_mel; log_mel(torch.zeros(1, 6400)); "
            "print('librosa' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-1000:]
