"""Speech activity from the Silero VAD model (silero-vad's shipped ONNX file, MIT), on the 25 Hz grid.

The model file ``silero_vad/data/silero_vad.onnx`` comes inside the ``silero-vad`` wheel and runs
on onnxruntime and numpy alone: the ``silero_vad`` package is only located
(``importlib.util.find_spec``), never imported (it imports torch), and nothing is downloaded.

How the model is fed (as silero's own ONNX wrapper does for v5/v6 models): 16 kHz audio in
consecutive 512-sample chunks (32 ms); each call gets the chunk with the previous chunk's last
64 samples prepended (zeros before the first), the recurrent ``state`` (2, 1, 128) returned by
the previous call and ``sr`` = 16000; it returns the chunk's speech probability. A partial last
chunk is zero-padded.

**Grid.** Five chunks span exactly four 25 Hz frames (2560 samples, 160 ms), so a frame's
probability is the overlap-weighted mean of the (at most two) chunks covering its 640 samples,
computed per 2560-sample block with one fixed (4, 5) matrix. Audio of ``n`` samples gives
``ceil(n / 640)`` frames (the last one possibly partial), as the audio features do.

**Streaming.** :class:`SpeechProbabilityStream` takes audio in pieces of any size and carries the
model state, the 64-sample context and under one block of pending samples between pieces:
memory is flat in the input's length, and any split gives the same probabilities as one pass.

**Speech frames.** :func:`speech_frames_from_probability` turns probabilities into speech flags
with silero's hysteresis: speech starts at a frame with p >= ``threshold``, ends once p has
stayed below ``neg_threshold`` (default ``threshold - 0.15``) for more than ``min_silence_s``; segments
shorter than ``min_speech_s`` are dropped and the others padded by ``pad_s`` each side
(silero's defaults: 0.5, 0.25 s, 0.1 s, 30 ms).

One onnxruntime session per process (created on first use, one intra-op and one inter-op
thread); about 200x real time on one CPU core.
"""
from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np

from avdetect.errors import AVDetectError
from avdetect.timegrid import SAMPLES_PER_FRAME, frame_to_sample, seconds_to_frames_round

log = logging.getLogger(__name__)

PACKAGE = "silero_vad"
MODEL_FILE = ("data", "silero_vad.onnx")
INSTALL_HINT = "pip install onnxruntime && pip install --no-deps silero-vad==6.2.3"
CHUNK = 512  # samples per model call at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous chunk prepended to each call
_SR = np.array(16_000, dtype=np.int64)  # the model's 'sr' input: audio is always 16 kHz here
STATE_SHAPE = (2, 1, 128)
BLOCK_FRAMES = 4  # 4 grid frames = 5 model chunks = 2560 samples
BLOCK = frame_to_sample(BLOCK_FRAMES)
BLOCK_CHUNKS = BLOCK // CHUNK
assert BLOCK_CHUNKS * CHUNK == BLOCK


class VADUnavailableError(AVDetectError):
    """The speech activity detector cannot run: the ``silero-vad`` package (its ONNX file) or
    ``onnxruntime`` is not installed. Nothing is downloaded; install them (see :data:`INSTALL_HINT`)."""


def _frame_weights() -> np.ndarray:
    """(BLOCK_FRAMES, BLOCK_CHUNKS): share of frame i's samples that chunk j covers (rows sum to 1)."""
    f0 = np.arange(BLOCK_FRAMES)[:, None] * SAMPLES_PER_FRAME
    c0 = np.arange(BLOCK_CHUNKS)[None, :] * CHUNK
    overlap = np.clip(np.minimum(f0 + SAMPLES_PER_FRAME, c0 + CHUNK) - np.maximum(f0, c0), 0, None)
    return (overlap / SAMPLES_PER_FRAME).astype(np.float32)


_WEIGHTS = _frame_weights()


def _frames_of_chunks(chunk_probs: np.ndarray) -> np.ndarray:
    """(n_blocks, BLOCK_FRAMES) frame probabilities from (n_blocks, BLOCK_CHUNKS) chunk ones: the
    weighted sum, chunk by chunk in a fixed order, so each frame's value is the same whatever the
    number of blocks (a BLAS product's rounding depends on the matrix sizes on some CPUs, which
    made the result depend on how the audio was split into pieces)."""
    out = chunk_probs[:, :1] * _WEIGHTS[:, 0]
    for j in range(1, BLOCK_CHUNKS):
        out = out + chunk_probs[:, j : j + 1] * _WEIGHTS[:, j]
    return out


def model_path() -> Path:
    """Path of the shipped ``silero_vad.onnx``; :class:`VADUnavailableError` when the package is absent."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise VADUnavailableError(f"speech activity detection needs the silero-vad package (not installed): {INSTALL_HINT}")
    roots = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
    for root in roots:
        p = Path(root).joinpath(*MODEL_FILE)
        if p.is_file():
            return p
    raise VADUnavailableError(f"the silero-vad package holds no {'/'.join(MODEL_FILE)} (looked in {', '.join(roots) or 'nowhere'}): "
                              f"reinstall it: {INSTALL_HINT}")


def _onnxruntime_installed() -> bool:
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


def vad_available() -> bool:
    """True when onnxruntime and silero-vad's ONNX file are installed (nothing is loaded)."""
    if not _onnxruntime_installed():
        return False
    try:
        model_path()
    except VADUnavailableError:
        return False
    return True


def vad_version() -> str:
    """Installed silero-vad version (``"unknown"`` when its metadata is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("silero-vad")
    except PackageNotFoundError:
        return "unknown"


_SESSION = None
_LOCK = threading.Lock()


def _session():
    """The process's one onnxruntime session on the VAD model (created on first use)."""
    global _SESSION
    if _SESSION is None:
        with _LOCK:
            if _SESSION is None:
                if not _onnxruntime_installed():
                    raise VADUnavailableError(f"speech activity detection needs onnxruntime (not installed): {INSTALL_HINT}")
                path = model_path()
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                try:
                    _SESSION = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
                except Exception as err:  # a corrupt or incompatible model file
                    raise VADUnavailableError(f"onnxruntime cannot load {path}: {err}") from err
                log.debug("silero VAD session loaded from %s", path)
    return _SESSION


class SpeechProbabilityStream:
    """Per-frame speech probabilities of audio given piece by piece (see the module doc).

    ``push(samples)`` returns the probabilities of the frames completed so far (a multiple of
    four frames), ``finish()`` those of the rest (the tail zero-padded); the concatenation holds
    ``ceil(total samples / 640)`` values.
    """

    def __init__(self):
        self._sess = _session()
        self._state = np.zeros(STATE_SHAPE, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._samples = 0  # pushed so far
        self._frames = 0  # returned so far
        self._done = False

    def _blocks(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of the frames of ``x`` (a whole number of blocks)."""
        n_chunks = len(x) // CHUNK
        y = np.concatenate([self._context, x])  # chunk j's model input: y[j * CHUNK : j * CHUNK + CONTEXT + CHUNK]
        probs = np.empty(n_chunks, np.float32)
        state = self._state
        for j in range(n_chunks):
            a = j * CHUNK
            out, state = self._sess.run(None, {"input": y[a : a + CONTEXT + CHUNK].reshape(1, -1), "state": state, "sr": _SR})
            probs[j] = out.reshape(-1)[0]
        self._state = state
        self._context = y[len(y) - CONTEXT :].copy()
        return _frames_of_chunks(probs.reshape(-1, BLOCK_CHUNKS)).reshape(-1)  # (n_blocks * BLOCK_FRAMES,)

    def push(self, samples: np.ndarray) -> np.ndarray:
        if self._done:
            raise RuntimeError("push() after finish()")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += len(samples)
        x = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = (len(x) // BLOCK) * BLOCK
        self._pending = x[whole:].copy()
        if whole == 0:
            return np.zeros(0, np.float32)
        out = self._blocks(x[:whole])
        self._frames += len(out)
        return out

    def finish(self) -> np.ndarray:
        """Probabilities of the frames not returned yet (the stream cannot be pushed to afterwards)."""
        if self._done:
            return np.zeros(0, np.float32)
        self._done = True
        total = -(-self._samples // SAMPLES_PER_FRAME)
        left = total - self._frames
        if left <= 0:
            return np.zeros(0, np.float32)
        x = np.zeros(BLOCK, np.float32)
        x[: len(self._pending)] = self._pending
        return self._blocks(x)[:left]


def speech_probability(audio_16k: np.ndarray, piece: int = frame_to_sample(1500)) -> np.ndarray:
    """(ceil(n / 640),) float32 speech probability per 25 Hz frame of mono 16 kHz audio (see the
    module doc); processed ``piece`` samples at a time. :class:`VADUnavailableError` without the model."""
    stream = SpeechProbabilityStream()
    audio_16k = np.asarray(audio_16k).reshape(-1)
    parts = [stream.push(audio_16k[a : a + piece]) for a in range(0, len(audio_16k), piece)]
    parts.append(stream.finish())
    return np.concatenate(parts).astype(np.float32)


def speech_frames_from_probability(prob: np.ndarray, threshold: float = 0.5, min_speech_s: float = 0.25,
                                   min_silence_s: float = 0.1, pad_s: float = 0.03,
                                   neg_threshold: float | None = None) -> np.ndarray:
    """(T,) bool speech flags from per-frame probabilities, with silero's hysteresis (module doc)."""
    prob = np.asarray(prob, dtype=np.float64).reshape(-1)
    T = len(prob)
    neg = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
    min_sil = max(1, seconds_to_frames_round(min_silence_s))
    min_speech = seconds_to_frames_round(min_speech_s)
    pad = seconds_to_frames_round(pad_s)
    segments: list[tuple[int, int]] = []
    on, start, temp_end = False, 0, -1
    for i in range(T):
        p = prob[i]
        if p >= threshold:
            temp_end = -1
            if not on:
                on, start = True, i
            continue
        if on and p < neg:
            if temp_end < 0:
                temp_end = i
            if i - temp_end >= min_sil:  # silence for more than min_silence_s
                segments.append((start, temp_end))
                on, temp_end = False, -1
    if on:
        segments.append((start, temp_end if temp_end >= 0 else T))
    flags = np.zeros(T, bool)
    for s, e in segments:
        if e - s >= min_speech:
            flags[max(0, s - pad) : min(T, e + pad)] = True
    return flags


def speech_frames(audio: np.ndarray, threshold: float = 0.5, min_speech_s: float = 0.25, min_silence_s: float = 0.1,
                  pad_s: float = 0.03) -> np.ndarray:
    """(ceil(n / 640),) bool: frames of mono 16 kHz ``audio`` where someone speaks (VAD + hysteresis)."""
    return speech_frames_from_probability(speech_probability(audio), threshold=threshold, min_speech_s=min_speech_s,
                                          min_silence_s=min_silence_s, pad_s=pad_s)
