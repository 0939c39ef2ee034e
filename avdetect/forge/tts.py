"""Offline text-to-speech for voice forgeries: the ``espeak-ng`` program (Debian/Ubuntu package
``espeak-ng``; formant synthesis, many voices). Optional: :func:`available` says whether it is
installed, and the ``voice_tts`` family is skipped (with a logged reason) where it is not."""
from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile

import numpy as np

from avdetect.errors import ConfigError
from avdetect.timegrid import SAMPLE_RATE

log = logging.getLogger(__name__)

#: Voices varied per forgery (espeak-ng's English voice + variant names).
VOICES = ("en-us+m1", "en-us+m3", "en-us+m5", "en-us+f1", "en-us+f3", "en-us+f4", "en+m2", "en+f2", "en-gb+m4",
          "en-gb+f5")
#: Words and sentences spoken (short, news- and interview-like).
SENTENCES = (
    "we never agreed to that", "the vote was postponed until next week", "I can confirm the numbers are correct",
    "this is not what I said", "the money was transferred on Monday", "we will cut taxes for everyone",
    "please send the documents tonight", "nobody was at the meeting", "the company denies every claim",
    "I have decided to resign", "the results will surprise you", "that report is completely false",
    "thank you all for coming today", "we are closing the border tomorrow", "I support the new law",
    "bring me the second file", "place blue at seven now", "set green by four soon",
)


def executable() -> str | None:
    return os.environ.get("AVDETECT_ESPEAK") or shutil.which("espeak-ng")


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether the espeak-ng program is installed here."""
    return executable() is not None


def synthesize(text: str, voice: str = "en-us+m3", speed: int = 165, pitch: int = 50) -> np.ndarray:
    """``text`` spoken by espeak-ng as mono float32 at 16 kHz."""
    exe = executable()
    if exe is None:
        raise ConfigError("text-to-speech needs the espeak-ng program (apt-get install espeak-ng)")
    import librosa
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="avdetect-tts-") as td:
        out = os.path.join(td, "tts.wav")
        proc = subprocess.run([exe, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "-w", out, text],
                              capture_output=True, timeout=60)
        if proc.returncode != 0 or not os.path.isfile(out):
            raise ConfigError(f"espeak-ng failed: {proc.stderr.decode(errors='replace').strip()[-200:]}")
        y, sr = sf.read(out, dtype="float32", always_2d=False)
    if y.ndim > 1:
        y = y.mean(axis=1)
    if sr != SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE)
    return np.asarray(y, np.float32)


def speech_for(n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """About ``n_samples`` of synthetic speech (a random sentence, voice, speed and pitch; stretched
    towards the span length within 0.7-1.4x, then cut or padded) and the parameters used."""
    import librosa

    text = str(rng.choice(SENTENCES))
    voice = str(rng.choice(VOICES))
    speed, pitch = int(rng.integers(140, 200)), int(rng.integers(30, 70))
    y = synthesize(text, voice=voice, speed=speed, pitch=pitch)
    # trim espeak's leading / trailing silence
    nz = np.flatnonzero(np.abs(y) > 0.01 * max(1e-6, float(np.abs(y).max())))
    if len(nz):
        y = y[nz[0]: nz[-1] + 1]
    rate = float(np.clip(len(y) / max(1, n_samples), 0.7, 1.4))
    if abs(rate - 1.0) > 0.02 and len(y) > 2048:
        y = librosa.effects.time_stretch(y, rate=rate)
    return y.astype(np.float32), {"text": text, "voice": voice, "speed": speed, "pitch": pitch, "stretch": rate}
