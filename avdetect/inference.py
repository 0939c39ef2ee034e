"""The inference engine: a model over a clip's windows -> stitched per-frame tracks and the clip score.

Every path that scores a clip goes through here: :meth:`avdetect.Detector.detect` (windows
streamed from the media file, :mod:`avdetect.sources`), evaluation and calibration
(``recipes/evaluate.py``, windows read from a preprocessing cache, :mod:`avdetect.data.predict`)
and training's model selection (the same). So what is calibrated and selected is what ships.

**Windows.** A clip of ``n`` frames is cut into windows of the model's length
(``config.window_frames``) starting every ``hop`` frames (:func:`window_starts`; default
:func:`default_hop`, three quarters of a window), the last one flush with the clip's end; a
clip shorter than a window is one zero-padded window. Each window's per-frame probabilities
(visual, audio, fused, lip-sync) are merged into whole-clip tracks by
:class:`avdetect.localization.TrackStitcher`, which cross-fades the overlaps (:func:`taper_frames`).

**The clip score** (:func:`clip_score`, the report's ``fake_probability``): the largest of

* the clip head's probability, averaged over windows weighted by each window's frames of the
  clip (a maximum over windows would rise with the video's length alone: more windows, more
  chances, so long real videos would cross a threshold set on short ones);
* each examined stream's most-fake half second: the highest mean of its frame probabilities
  over :data:`STREAM_SCORE_FRAMES` consecutive frames where the stream is present (the visual
  stream only when faces cover at least ``min_face_coverage`` of the frames).

It depends on the model and the inputs only, never on a threshold, so a threshold can be
calibrated on it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from avdetect.errors import ConfigError
from avdetect.localization import ScoreTrack, TrackStitcher
from avdetect.timegrid import SAMPLES_PER_FRAME, seconds_to_frame

log = logging.getLogger(__name__)

#: Frames over which a stream's score is taken (its most-fake half second).
STREAM_SCORE_FRAMES = seconds_to_frame(0.5)  # 12 whole frames
#: Below this fraction of frames with a tracked face the visual stream is not examined.
MIN_FACE_COVERAGE = 0.1
#: The tracks :class:`InferenceResult` holds, one per model output.
TRACK_NAMES = ("visual", "audio", "fused", "sync")


def default_hop(window: int) -> int:
    """Frames between window starts by default: three quarters of a window."""
    return max(1, (3 * window) // 4)


def taper_frames(window: int, hop: int) -> int:
    """Frames of each window's edges that the stitcher ramps down: the overlap, at most a quarter window."""
    return max(1, min(window - hop, window // 4)) if hop < window else 1


def window_starts(n: int, window: int, hop: int) -> list[int]:
    """First frames of the windows over ``n`` frames: every ``hop``, the last flush with the end,
    so every frame is covered; ``[0]`` when the clip is not longer than a window."""
    if hop < 1 or window < 1:
        raise ValueError(f"window and hop must be >= 1, got {window}, {hop}")
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] != n - window:
        starts.append(n - window)
    return starts


@dataclass
class WindowInputs:
    """What the model sees of frames ``[start, start + length)``; arrays have ``length`` rows
    (``length`` <= the model's window; the engine pads)."""

    start: int
    length: int
    mouth: np.ndarray | None = None  # (length, H, W, 3) uint8, or None without video
    face: np.ndarray | None = None  # (length, H, W, 3) uint8, only for models that use the face crop
    valid: np.ndarray | None = None  # (length,) bool, frames with a tracked face
    audio: np.ndarray | None = None  # (length * 640,) float32 16 kHz, or None without audio
    audio_valid: np.ndarray | None = None  # (length,) bool, frames with audio


@dataclass
class InferenceResult:
    """Stitched per-frame tracks of one clip and the clip head's outputs."""

    n_frames: int
    tracks: dict[str, ScoreTrack]  # TRACK_NAMES -> (n,) p(fake) (sync: p(out of sync)); boundaries on all but sync
    clip_probability: float  # clip head, frame-weighted mean over windows (0 when no window had input)
    category_probabilities: np.ndarray | None  # (4,) of the window with the highest clip probability
    windows: int
    model_seconds: float
    visual_present: np.ndarray | None = None  # (n,) bool frames with a tracked face (None: no video)
    audio_present: np.ndarray | None = None  # (n,) bool frames with audio (None: no audio)


@dataclass(frozen=True)
class ClipScore:
    """The clip score and its parts (:func:`clip_score`)."""

    fake_probability: float
    clip: float
    visual: float | None  # the visual stream's most-fake half second (None: not examined)
    audio: float | None


def stream_score(track: np.ndarray, present: np.ndarray, width: int = STREAM_SCORE_FRAMES) -> float | None:
    """Highest mean of ``track`` over ``width`` consecutive frames where ``present`` (fewer when
    there are fewer such frames); None when there is none."""
    v = np.asarray(track, np.float64)[np.asarray(present, bool)]
    if len(v) == 0:
        return None
    w = max(1, min(width, len(v)))
    c = np.concatenate([[0.0], np.cumsum(v)])
    return float(((c[w:] - c[:-w]) / w).max())


def clip_score(result: InferenceResult, visual_present: np.ndarray | None, audio_present: np.ndarray | None,
               min_face_coverage: float = MIN_FACE_COVERAGE) -> ClipScore:
    """THE clip score (module docstring). ``visual_present`` / ``audio_present``: (n,) bool, frames
    with a tracked face / with audio, or None when the file has no such stream (usually the
    result's own ``visual_present`` / ``audio_present``, gathered from the windows)."""
    v = a = None
    if visual_present is not None and len(visual_present) and visual_present.any() \
            and float(np.mean(visual_present)) >= min_face_coverage:
        v = stream_score(result.tracks["visual"].frame, visual_present)
    if audio_present is not None:
        a = stream_score(result.tracks["audio"].frame, audio_present)
    p = max(result.clip_probability, v or 0.0, a or 0.0)
    return ClipScore(float(p), float(result.clip_probability), v, a)


@dataclass
class WindowEngine:
    """Runs ``model`` over windows given one by one (:meth:`add`, in any order), ``batch_size`` at a
    time, and stitches them (:meth:`result`). Holds at most a batch of inputs."""

    model: object
    n_frames: int
    hop: int | None = None
    device: str = "cpu"
    batch_size: int = 1
    amp: bool = False
    _pending: list[WindowInputs] = field(default_factory=list, init=False)
    _stitch: dict[str, TrackStitcher] = field(init=False)
    _clip: list[float] = field(default_factory=list, init=False)
    _weights: list[int] = field(default_factory=list, init=False)
    _cats: list[np.ndarray] = field(default_factory=list, init=False)
    _seconds: float = field(default=0.0, init=False)
    _windows: int = field(default=0, init=False)
    _visual: np.ndarray | None = field(default=None, init=False)  # presence masks, from the windows' own
    _audio: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.window = int(self.model.config.window_frames)
        self.hop = int(self.hop or default_hop(self.window))
        if not 1 <= self.hop <= self.window:
            raise ConfigError(f"hop must be 1..{self.window} frames (the model's window), got {self.hop}: "
                              "a larger hop would leave frames no window sees")
        self.use_face = bool(self.model.config.visual.use_face)
        self.centre = int(self.model.config.sync.max_offset)
        taper = taper_frames(self.window, self.hop)
        self._stitch = {k: TrackStitcher(self.n_frames, taper=taper) for k in TRACK_NAMES}

    def starts(self) -> list[int]:
        return window_starts(self.n_frames, self.window, self.hop)

    def add(self, w: WindowInputs) -> None:
        if w.length < 1 or w.length > self.window:
            raise ValueError(f"a window holds 1..{self.window} frames, got {w.length}")
        if w.mouth is None and w.audio is None:
            raise ValueError(f"window at frame {w.start} has neither video nor audio")
        sl = slice(w.start, w.start + w.length)
        if w.mouth is not None:
            if self._visual is None:
                self._visual = np.zeros(self.n_frames, bool)
            self._visual[sl] = np.asarray(w.valid, bool)
        if w.audio is not None:
            if self._audio is None:
                self._audio = np.zeros(self.n_frames, bool)
            self._audio[sl] = np.asarray(w.audio_valid, bool)
        self._pending.append(w)
        if len(self._pending) >= self.batch_size:
            self._run()

    @staticmethod
    def _stack(arrays: list[np.ndarray], rows: int, dtype=None) -> np.ndarray:
        """``(len(arrays), rows, ...)``: the arrays zero-padded to ``rows`` and stacked, copied at
        most once (a single full-length writable window is passed as a view: its crops are
        megabytes; a read-only one, such as a memory-mapped cache, is copied for torch)."""
        first = np.asarray(arrays[0], dtype)
        if len(arrays) == 1 and len(first) == rows and first.flags.writeable:
            return first[None]
        out = np.zeros((len(arrays), rows, *first.shape[1:]), first.dtype)
        for k, x in enumerate(arrays):
            out[k, :len(x)] = x
        return out

    def _run(self) -> None:
        import torch

        batch, self._pending = self._pending, []
        if not batch:
            return
        T, dev = self.window, self.device
        has_v = [w.mouth is not None for w in batch]
        has_a = [w.audio is not None for w in batch]
        if len(set(has_v)) > 1 or len(set(has_a)) > 1:  # one clip's windows agree; never mix
            raise ValueError("windows of one batch must carry the same streams")
        mouth = face = vmask = audio = amask = None
        stack = self._stack
        if has_v[0]:
            mouth = torch.from_numpy(stack([w.mouth for w in batch], T)).permute(0, 1, 4, 2, 3).to(dev)  # (B, T, 3, H, W)
            vmask = torch.from_numpy(stack([w.valid for w in batch], T, bool)).to(dev)  # (B, T)
            if self.use_face and batch[0].face is not None:
                face = torch.from_numpy(stack([w.face for w in batch], T)).permute(0, 1, 4, 2, 3).to(dev)
        if has_a[0]:
            audio = torch.from_numpy(stack([w.audio for w in batch], T * SAMPLES_PER_FRAME, np.float32)).to(dev)  # (B, T * 640)
            amask = torch.from_numpy(stack([w.audio_valid for w in batch], T, bool)).to(dev)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device_type=torch.device(dev).type, dtype=torch.bfloat16,
                                                    enabled=self.amp):
            out = self.model(mouth, audio, face=face, visual_mask=vmask, audio_mask=amask)
        probs = {"visual": torch.sigmoid(out.frame_visual_logits.float()),  # (B, T)
                 "audio": torch.sigmoid(out.frame_audio_logits.float()),
                 "fused": torch.sigmoid(out.frame_fused_logits.float())}
        probs = {k: v.cpu().numpy() for k, v in probs.items()}
        bnd = torch.sigmoid(out.boundary_logits.float()).cpu().numpy()  # (B, T, 2)
        dist = out.boundary_offsets.float().cpu().numpy()  # (B, T, 2) frames
        sync = 1.0 - torch.softmax(out.sync_logits.float(), dim=-1)[..., self.centre].cpu().numpy()  # (B, T) p(out of sync)
        clip = torch.sigmoid(out.clip_logits.float()).cpu().numpy()  # (B,)
        cats = torch.softmax(out.category_logits.float(), dim=-1).cpu().numpy()  # (B, 4)
        any_input = out.frame_mask.any(dim=1).cpu().numpy()  # (B,)
        self._seconds += time.perf_counter() - t0
        for k, w in enumerate(batch):
            m = w.length
            for name in ("visual", "audio", "fused"):
                self._stitch[name].add(w.start, ScoreTrack(frame=probs[name][k, :m], start=bnd[k, :m, 0],
                                                           end=bnd[k, :m, 1], start_dist=dist[k, :m, 0],
                                                           end_dist=dist[k, :m, 1]))
            self._stitch["sync"].add(w.start, ScoreTrack(frame=sync[k, :m]))
            if any_input[k]:  # a window with no face and no audio says nothing about the clip
                self._clip.append(float(clip[k]))
                self._weights.append(m)
                self._cats.append(cats[k])
            self._windows += 1

    def result(self) -> InferenceResult:
        self._run()
        tracks = {k: s.result() for k, s in self._stitch.items()}
        if self._clip:
            p = float(np.average(self._clip, weights=self._weights))
            cats = self._cats[int(np.argmax(self._clip))]
        else:
            p, cats = 0.0, None
        return InferenceResult(self.n_frames, tracks, p, cats, self._windows, self._seconds, self._visual, self._audio)


def run_windows(model, windows: Iterable[WindowInputs], n_frames: int, *, hop: int | None = None,
                device: str = "cpu", batch_size: int = 1, amp: bool = False) -> InferenceResult:
    """:class:`WindowEngine` over ``windows`` (their ``start`` values should be
    :func:`window_starts` of ``n_frames``, e.g. from :meth:`WindowEngine.starts`)."""
    engine = WindowEngine(model, n_frames, hop=hop, device=device, batch_size=batch_size, amp=amp)
    for w in windows:
        engine.add(w)
    return engine.result()
