"""``avdetect.detect(path)`` and :class:`Detector`: a media file in, a :class:`DetectionReport` out.

    import avdetect
    report = avdetect.detect("clip.mp4")                 # default checkpoint, CPU or GPU
    report.verdict, report.fake_probability, report.segments

    det = avdetect.Detector.from_pretrained("checkpoints/avdetect-small-synth")   # load once
    for path in paths:
        det.detect(path).to_dict()

The pipeline streams, so memory does not grow with the video's length beyond a few floats per
frame (the score tracks):

1. :func:`avdetect.media.load_media` inspects the file (no pixels decoded yet).
2. Faces are tracked window by window (:meth:`avdetect.faces.FaceTracker.iter_windows`); audio is
   decoded in chunks of ``audio_chunk_s`` seconds. Only the frames of the model's current window
   (plus one hop) are held.
3. The model runs on overlapping windows of ``config.window_frames`` frames every ``hop`` frames;
   frames without a face are masked (visual branch), a file without audio runs with the audio
   branch skipped. Each window's per-frame probabilities are merged into whole-video tracks by
   :class:`avdetect.localization.TrackStitcher`.
4. :func:`avdetect.localization.propose` turns the tracks into ranked segments (soft-NMS);
   segments whose frames look fake on average (``>= threshold``) are flagged.
5. Face thumbnails of flagged segments are decoded afterwards (one frame each), optional
   training-free evidence comes from :mod:`avdetect.forensics` when that package is present,
   and everything goes into a :class:`avdetect.report.DetectionReport` with provenance.
6. The verdict (:func:`decide_verdict`, below).

**Checkpoints** are folders (``model.safetensors`` + ``config.json``, optionally
``calibration.json``); a bare name such as ``"avdetect-small-synth"`` (no slash, not an existing
path) is looked up among the shipped checkpoints (:func:`resolve_checkpoint`).

**The verdict rule** (:data:`VERDICT_RULE`, recorded in every report's ``verdict_rule``). A false
accusation of a real video is the worst output this tool can give, so a verdict is ``fake`` or
``real`` only where the checkpoint's training covers the input:

* **Outside the checkpoint's domain** (:mod:`avdetect.domain`: a stream it was trained on is
  missing, no tracked face or a face in too few frames, a face too small in the source, a still
  picture or frozen video, several faces of comparable size on screen together, too little
  speech; limits from ``calibration.json``'s ``domain``, see :func:`read_calibration`): verdict
  ``unknown``, no flagged segment (the model's ranked ``proposals`` stay in the report for
  researchers), the stream verdicts ``unknown`` (their scores kept), and the explanation starts
  with why.
* **Inside it**: ``fake`` if the model's p(fake) reaches the threshold (the clip probability, a
  stream's most-fake half second or a flagged segment's score, as before) or a segment is
  flagged; training-free evidence items that point at manipulation over the same file are added
  to the reasons. A training-free item *with a time span* of a kind that points at manipulation
  (:data:`SPAN_EVIDENCE_KINDS`: ``sync_span``, ``audio_splice``, ``visual_change``) of strength
  >= :data:`STRONG_EVIDENCE` (0.7) that the model does **not** confirm makes the verdict
  ``unknown`` ("inspect this span"), never ``fake``: measured on the 32 real clips of the
  development corpus, two untouched clips carry such items (an Obama address, a sync span of
  strength 0.97; a presenter video, an audio splice of 0.87), so evidence alone would accuse real
  footage. Whole-file facts (``container``, ``audio_bandwidth``, ``blinks``, ``sync_offset``) and
  ``face_track_jump`` (a cut as often as an edit) never change the verdict. ``real`` if none of
  that, every stream present was examined and p(fake) is below the checkpoint's ``real_below``
  (its calibration.json; default the threshold): a weak checkpoint whose real and forged dev
  clips overlap in score says ``unknown`` ("model uncertain") between the two; else ``unknown``.

The reasons, each ``{code, message, brief}`` in plain words with the measured value, are the
report's ``verdict_reasons`` (see :class:`avdetect.report.model.VerdictReason`); what was
measured and the domain it was checked against are in ``extra["domain"]``.
"""
from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np

from avdetect import __version__
from avdetect.domain import Domain, DomainMeter, check_domain
from avdetect.errors import CheckpointError, CheckpointNotFoundError, ConfigError, MediaError
from avdetect.localization import ProposalConfig, ScoreTrack, TrackStitcher, propose
from avdetect.media import load_media, sha256_file
from avdetect.report.model import (DetectionReport, ModalityResult, Provenance, QualityWarning, Segment,
                                   Thumbnail, Tracks, VerdictReason)
from avdetect.timegrid import FPS, SAMPLES_PER_FRAME, frame_to_sample, frames_to_seconds, samples_to_seconds

log = logging.getLogger(__name__)

#: Name of the checkpoint ``detect`` uses by default: trained on real talking-head footage and
#: forgeries made from it (``recipes/configs/realfaces.yaml``), calibrated on real dev clips.
DEFAULT_CHECKPOINT_NAME = "avdetect-small-real"
#: The checkpoint trained on the synthetic benchmark only (the demo's clips are synthetic).
SYNTHETIC_CHECKPOINT_NAME = "avdetect-small-synth"
#: Environment variable that overrides the default checkpoint folder.
CHECKPOINT_ENV = "AVDETECT_CHECKPOINT"

MIN_CLIP_S = 2.0  # shorter clips get a warning: less context than the model was trained with
LOW_RES_SIDE = 240  # source videos whose shorter side is below this get a warning
SMALL_FACE_FRAC = 0.08  # main face height below this fraction of the frame: warning

#: Evidence kinds whose items have a time span and point at a manipulation there (a strong one
#: the model does not confirm makes an in-domain verdict unknown; see the module docstring).
SPAN_EVIDENCE_KINDS = ("sync_span", "audio_splice", "visual_change")
#: Strength at or above which such an item makes an in-domain file fake.
STRONG_EVIDENCE = 0.7
#: The verdict rule in words, as every report records it.
VERDICT_RULE = (
    "unknown if the file is outside the checkpoint's domain (any failed domain check, listed in verdict_reasons; "
    "then no segment is flagged and the model's proposals are kept for reference only); otherwise fake if the "
    "model's p(fake) reaches the threshold or a segment is flagged; otherwise unknown if a training-free evidence "
    f"item with a time span ({', '.join(SPAN_EVIDENCE_KINDS)}) has strength >= {STRONG_EVIDENCE:g} (evidence alone "
    "never makes a file fake); otherwise real if every stream present was examined and p(fake) is below the "
    "checkpoint's real_below (default: the threshold); otherwise unknown"
)


def shipped_checkpoint_roots() -> list[Path]:
    """Folders that hold the shipped checkpoints, one sub-folder each: ``avdetect/_checkpoints``
    inside the installed package (a wheel) and, in a source checkout, ``checkpoints/`` at the top
    of the tree (``avdetect/_checkpoints`` links to it)."""
    here = Path(__file__).resolve().parent
    return [here / "_checkpoints", here.parent / "checkpoints"]


def available_checkpoints() -> list[str]:
    """Names of the shipped checkpoints (folders with a ``config.json`` in a shipped root)."""
    names: set[str] = set()
    for root in shipped_checkpoint_roots():
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if (p / "config.json").is_file())
    return sorted(names)


def default_checkpoint_dir() -> Path:
    """``$AVDETECT_CHECKPOINT`` if set, else the shipped :data:`DEFAULT_CHECKPOINT_NAME`: inside the
    installed package (``avdetect/_checkpoints``, in a wheel) or, in a source checkout,
    ``checkpoints/`` at the top of the tree (``avdetect/_checkpoints`` links to it)."""
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        return Path(env)
    packaged, top = shipped_checkpoint_roots()
    if (packaged / DEFAULT_CHECKPOINT_NAME).is_dir():
        return packaged / DEFAULT_CHECKPOINT_NAME
    return top / DEFAULT_CHECKPOINT_NAME


def _is_bare_name(checkpoint: str | Path) -> bool:
    text = str(checkpoint)
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return bool(text) and text not in (".", "..") and not any(c in text for c in seps)


def resolve_checkpoint(checkpoint: str | Path | None = None) -> Path:
    """The checkpoint folder to load: None: the default; an existing path: itself; a bare name (no
    slash, not an existing path, e.g. ``"avdetect-small-synth"``): the shipped checkpoint of that
    name (:func:`shipped_checkpoint_roots`). Raises :class:`CheckpointNotFoundError` if absent
    (for an unknown name, listing the names available)."""
    path = default_checkpoint_dir() if checkpoint is None else Path(checkpoint)
    if checkpoint is not None and not path.exists() and _is_bare_name(checkpoint):
        for root in shipped_checkpoint_roots():
            if (root / str(checkpoint)).is_dir():
                return root / str(checkpoint)
        names = available_checkpoints()
        raise CheckpointNotFoundError(
            f"no checkpoint folder or shipped checkpoint named {str(checkpoint)!r} (shipped checkpoints: "
            f"{', '.join(names) if names else 'none installed'}); pass one of those names or a checkpoint folder")
    if not path.exists():
        if checkpoint is None:
            raise CheckpointNotFoundError(
                f"the default checkpoint {DEFAULT_CHECKPOINT_NAME} is not installed here: train it with "
                f"`python recipes/train.py --config recipes/configs/realfaces.yaml` and put it in that folder, "
                f"set ${CHECKPOINT_ENV}, or pass a checkpoint folder (--checkpoint DIR)", path)
        raise CheckpointNotFoundError("checkpoint folder does not exist", path)
    return path


@dataclass(frozen=True)
class DetectOptions:
    """Parameters of one detection run (all recorded in the report's provenance).

    threshold: probability at or above which the file, a stream or a segment counts as fake.
    real_below: the verdict is ``real`` only when p(fake) is below this (None: below ``threshold``);
        between the two it is ``unknown`` ("the model cannot tell"). A checkpoint sets it in its
        calibration.json where real and forged dev clips overlap in score (a weak model).
    hop: frames between window starts (None: three quarters of the model's window, so neighbouring
        windows overlap by a quarter, which :class:`TrackStitcher` cross-fades).
    max_side: longer side of decoded frames (faces are tracked and cropped at this size).
    min_face_coverage: below this fraction of frames with a face the visual verdict is "unknown".
    min_segment_score: proposals whose ranking confidence (localisation quality, see
        :mod:`avdetect.localization`) is below this are never flagged (default 0: a segment is
        flagged when its frames' mean fused p(fake) reaches ``threshold``; that mean is its score).
    min_segment_s: flagged segments are at least this long (shorter blips are model noise).
    merge_gap_s: flagged segments closer than this are reported as one.
    max_segments: at most this many flagged segments (best first).
    face_backend: face detector backend name.
    thumbnails: decode one face thumbnail per flagged segment.
    forensics: run :func:`avdetect.forensics.analyze` when that package is importable.
    audio_chunk_s: seconds of audio decoded at a time.
    prefetch: track faces in a background thread, one window ahead of the model (two cores busy).
    """

    threshold: float = 0.5
    real_below: float | None = None
    hop: int | None = None
    max_side: int = 640
    min_face_coverage: float = 0.1
    min_segment_score: float = 0.0
    min_segment_s: float = 0.2
    merge_gap_s: float = 0.24
    max_segments: int = 20
    face_backend: str = "opencv"
    thumbnails: bool = True
    forensics: bool = True
    audio_chunk_s: float = 60.0
    prefetch: bool = True

    def validate(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.real_below is not None and not 0.0 < self.real_below < 1.0:
            raise ConfigError(f"real_below must be in (0, 1), got {self.real_below}")
        if self.hop is not None and self.hop < 1:
            raise ConfigError(f"hop must be >= 1 frame, got {self.hop}")
        if self.max_side < 64:
            raise ConfigError(f"max_side must be >= 64 pixels, got {self.max_side}")
        if self.audio_chunk_s < 1.0:
            raise ConfigError(f"audio_chunk_s must be >= 1 s, got {self.audio_chunk_s}")


# ---------------------------------------------------------------------------------------
# streaming buffers
class _Prefetch:
    """Run an iterator in a background thread, ``depth`` items ahead, so that face tracking
    (OpenCV, which releases the GIL) overlaps the model (torch, likewise) on another core.
    Exceptions are re-raised in the consumer; :meth:`close` stops and joins the thread."""

    _DONE = object()

    def __init__(self, iterator: Iterator, depth: int = 2):
        import queue
        import threading

        self._it = iterator
        self._q: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="avdetect-faces", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import queue

        try:
            for item in self._it:
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    break
            else:
                self._q.put(self._DONE)
        except BaseException as err:  # handed to the consumer, which raises it
            self._q.put(err)
        finally:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()  # the generator's cleanup kills its ffmpeg

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is self._DONE:
            self._q.put(self._DONE)  # stay exhausted
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        import queue

        self._stop.set()
        while self._thread.is_alive():
            try:
                self._q.get(timeout=0.1)  # unblock a producer waiting on a full queue
            except queue.Empty:
                pass
        self._thread.join()


class _FaceStream:
    """Pulls :class:`FaceTrack` chunks and serves any frame range at or after the last drop."""

    def __init__(self, chunks: Iterator, n_frames: int, keep_face: bool):
        self._chunks = chunks
        self.n_frames = n_frames
        self.keep_face = keep_face
        self.start = 0  # first frame held
        self._parts: list = []  # FaceTrack chunks covering [start, end)
        self.end = 0
        self.valid = np.zeros(n_frames, bool)  # whole video, for the report (1 byte per frame)
        self.boxes = np.zeros((n_frames, 4), np.float32)  # for thumbnails
        self.mouth_boxes = np.zeros((n_frames, 4), np.float32)  # for the still-video check
        self.seconds = 0.0
        self.last_track = None
        self.on_chunk = None  # called with every chunk as it arrives (the forensic face features)

    def _pull(self, upto: int) -> None:
        while self.end < upto:
            t0 = time.perf_counter()
            try:
                part = next(self._chunks)
            except StopIteration:
                raise MediaError(f"face tracking ended at frame {self.end} of {self.n_frames}") from None
            self.seconds += time.perf_counter() - t0
            a, b = part.start_frame, part.start_frame + len(part)
            self.valid[a:b] = part.valid
            self.boxes[a:b] = part.boxes
            self.mouth_boxes[a:b] = part.mouth_boxes
            self.last_track = part
            if self.on_chunk is not None:
                self.on_chunk(part)
            self._parts.append(part)
            self.end = b

    def close(self) -> None:
        """Stop the decoder (the face generator's cleanup kills its ffmpeg)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def window(self, a: int, b: int):
        """(mouth (n, 96, 96, 3), face (n, 128, 128, 3) or None, valid (n,)) for frames [a, b)."""
        self._pull(b)
        # drop chunks entirely before a (windows only move forward)
        while self._parts and self._parts[0].start_frame + len(self._parts[0]) <= a:
            self._parts.pop(0)
        self.start = self._parts[0].start_frame if self._parts else a
        mouths, faces = [], []
        for p in self._parts:
            lo, hi = max(a, p.start_frame), min(b, p.start_frame + len(p))
            if lo >= hi:
                continue
            sl = slice(lo - p.start_frame, hi - p.start_frame)
            mouths.append(p.mouth[sl])
            if self.keep_face:
                faces.append(p.face[sl])
        mouth = np.concatenate(mouths)
        face = np.concatenate(faces) if self.keep_face else None
        return mouth, face, self.valid[a:b]


class _AudioStream:
    """Audio samples of any range at or after the last one asked for, decoded in chunks."""

    def __init__(self, media, chunk_s: float):
        self.media = media
        self.n_samples = media.n_samples
        self.chunk = int(round(chunk_s)) * (SAMPLES_PER_FRAME * FPS)
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0  # sample index of buf[0]
        self.next_chunk = 0  # sample index where the next decode starts
        self.seconds = 0.0

    def samples(self, a: int, b: int) -> np.ndarray:
        """Samples [a, b) (zeros past the end of the audio stream)."""
        while self.next_chunk < min(b, self.n_samples):
            t0 = time.perf_counter()
            stop = min(self.n_samples, self.next_chunk + self.chunk)
            got = self.media.read_audio(samples_to_seconds(self.next_chunk), samples_to_seconds(stop))
            keep_from = max(0, a - self.buf_start)
            self.buf = np.concatenate([self.buf[keep_from:], got])
            self.buf_start += keep_from
            self.next_chunk += len(got) if len(got) else stop - self.next_chunk
            self.seconds += time.perf_counter() - t0
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, self.buf_start), min(b, self.buf_start + len(self.buf))
        if hi > lo:
            out[lo - a:hi - a] = self.buf[lo - self.buf_start:hi - self.buf_start]
        return out


def _window_starts(n: int, window: int, hop: int) -> list[int]:
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] != n - window:
        starts.append(n - window)
    return starts


def _moving_max(x: np.ndarray, valid: np.ndarray, width: int) -> float | None:
    """Highest mean of ``x`` over ``width`` consecutive valid frames (fewer if the clip is shorter)."""
    v = x[valid]
    if len(v) == 0:
        return None
    w = max(1, min(width, len(v)))
    c = np.concatenate([[0.0], np.cumsum(v)])
    return float(((c[w:] - c[:-w]) / w).max())


def _sha256_or_none(path: Path) -> str:
    return sha256_file(path) if path.is_file() else "none"


def _r(x: float, nd: int = 6) -> float:
    return float(round(float(x), nd))


def _track_list(values: np.ndarray, mask: np.ndarray) -> list[float | None]:
    return [round(float(v), 4) if m else None for v, m in zip(values, mask)]


# ---------------------------------------------------------------------------------------
CALIBRATION_FILE = "calibration.json"


def read_calibration(folder: Path) -> dict | None:
    """What a checkpoint says about its own use (``calibration.json`` beside its weights), or None
    when there is no such file (then the defaults apply, :class:`avdetect.domain.Domain` included).

    Keys: ``threshold`` (its decision threshold, required), ``method`` (how it was found),
    optionally ``warning`` (a caveat every report made with it must carry, e.g. synthetic-only
    training) and ``domain``: what its training covered, an object whose keys all have defaults
    that fit a talking-face model (absent keys take them; an absent ``domain`` is all defaults)::

        "domain": {"streams": ["video", "audio"],  # streams it was trained on; the file needs all
                   "min_face_coverage": 0.5,        # fraction of frames with a tracked face
                   "min_face_px": 40,               # main face height, source pixels
                   "min_face_frac": 0.06,           # main face height / source frame height
                   "min_speech_frac": 0.15,         # fraction of frames with speech
                   "max_comparable_faces": 1,       # faces of comparable size on screen together
                   "comparable_face_ratio": 0.5,    # "comparable": persistence x size >= this x the main face's
                   "min_mouth_motion": 1.0}         # below: a still picture (grey levels, avdetect.domain)

    Returned as ``{"threshold", "method", "warning", "domain"}`` with ``domain`` a
    :class:`~avdetect.domain.Domain`. A malformed file (bad JSON, missing or out-of-range
    threshold, a ``domain`` that is not an object, an unknown domain key, a wrong type or an
    out-of-range value) is a :class:`CheckpointError`, never a silent default."""
    f = Path(folder) / CALIBRATION_FILE
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
        value = float(data["threshold"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"malformed {CALIBRATION_FILE}: {err}", f) from err
    if not 0.0 < value < 1.0:
        raise CheckpointError(f"{CALIBRATION_FILE}: threshold must be in (0, 1), got {value}", f)
    try:
        domain = Domain.from_dict(data.get("domain"))
    except ValueError as err:
        raise CheckpointError(f"{CALIBRATION_FILE}: malformed domain: {err}", f) from err
    real_below = data.get("real_below")
    if real_below is not None:
        try:
            real_below = float(real_below)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{CALIBRATION_FILE}: real_below must be a number: {err}", f) from err
        if not 0.0 < real_below <= value:
            raise CheckpointError(f"{CALIBRATION_FILE}: real_below must be in (0, threshold], got {real_below}", f)
    warning = data.get("warning")
    return {"threshold": value, "method": str(data.get("method", "")), "warning": str(warning) if warning else None,
            "domain": domain, "real_below": real_below}


# ---------------------------------------------------------------------------------------
# the verdict
@dataclass(frozen=True)
class Verdict:
    """What :func:`decide_verdict` decided: ``verdict`` (fake | real | unknown), ``reasons`` (the
    report's ``verdict_reasons``) and whether the file is inside the checkpoint's domain."""

    verdict: str
    reasons: list[VerdictReason]
    in_domain: bool


def strong_span_evidence(evidence: list[dict], strong: float = STRONG_EVIDENCE) -> list[dict]:
    """Evidence items with a time span, of a kind in :data:`SPAN_EVIDENCE_KINDS`, with strength
    >= ``strong``, strongest first (whole-file facts never qualify)."""
    items = [e for e in evidence if e.get("kind") in SPAN_EVIDENCE_KINDS and e.get("start_s") is not None
             and e.get("end_s") is not None and float(e.get("strength") or 0.0) >= strong]
    return sorted(items, key=lambda e: -float(e["strength"]))


def decide_verdict(p_fake: float, threshold: float, segments: list, evidence: list[dict],
                   domain_reasons: list[VerdictReason], unexamined: list[str] = (),
                   real_below: float | None = None) -> Verdict:
    """The verdict rule (:data:`VERDICT_RULE`; module docstring) on what detection found.

    Args:
        p_fake: the model's p(fake) of the file (clip probability, streams' most-fake half second,
            flagged segments' scores: the largest).
        threshold: the decision threshold.
        segments: segments the model flagged (objects with ``start_s``, ``end_s``, ``modality``).
        evidence: training-free evidence items (report dicts: ``kind``, ``start_s``, ``end_s``,
            ``strength``, ``explanation``).
        domain_reasons: failed domain checks (:func:`avdetect.domain.check_domain`); any -> unknown.
        unexamined: one note per stream present in the file that could not be examined.
        real_below: ``real`` only below this p(fake) (None: the threshold); between the two: unknown.
    """
    if domain_reasons:
        return Verdict("unknown", list(domain_reasons), in_domain=False)
    reasons: list[VerdictReason] = []
    if p_fake >= threshold:
        reasons.append(VerdictReason("model_score", f"the model's p(fake) {p_fake:.3f} reaches the threshold {threshold:.2f}",
                                     f"p(fake) {p_fake:.2f} >= {threshold:.2f}"))
    if segments:
        top = segments[0]
        reasons.append(VerdictReason(
            "flagged_segments", f"the model flags {len(segments)} segment(s), the strongest {top.start_s:.2f}-{top.end_s:.2f} s "
                                f"({top.modality})", f"{len(segments)} segment(s) flagged"))
    strong = strong_span_evidence(evidence)
    if strong:
        e = strong[0]
        kind = str(e["kind"]).replace("_", " ")
        where = f"{kind} at {e['start_s']:.2f}-{e['end_s']:.2f} s (strength {float(e['strength']):.2f})"
        brief = f"{kind} {e['start_s']:.2f}-{e['end_s']:.2f} s, strength {float(e['strength']):.2f}"
        if reasons:  # the model's call, with the evidence that agrees
            reasons.append(VerdictReason(
                "strong_evidence", f"{len(strong)} training-free evidence item(s) with a time span reach strength "
                                   f"{STRONG_EVIDENCE:g}, the strongest {where}: {e.get('explanation', '')}".rstrip(": "),
                brief))
        else:
            return Verdict("unknown", [VerdictReason(
                "evidence_unconfirmed", f"the model finds nothing, but {len(strong)} training-free evidence item(s) with a "
                                        f"time span reach strength {STRONG_EVIDENCE:g}, the strongest {where}: "
                                        f"{e.get('explanation', '')}; such items also occur in untouched footage, so this "
                                        "is a span to inspect, not a verdict".replace(": ;", ";"),
                f"evidence to inspect: {brief}")], in_domain=True)
    if reasons:
        return Verdict("fake", reasons, in_domain=True)
    if unexamined:
        return Verdict("unknown", [VerdictReason(
            "stream_not_examined", "; ".join(unexamined) + ": a stream present in the file could not be examined, so "
                                                           "'real' cannot be claimed", "a stream was not examined")],
            in_domain=True)
    if real_below is not None and p_fake >= min(real_below, threshold):
        return Verdict("unknown", [VerdictReason(
            "model_uncertain", f"the model's p(fake) {p_fake:.3f} is below the threshold {threshold:.2f} but not below "
                               f"{real_below:.2f}, the score under which this checkpoint's real and forged dev clips "
                               "separate: it cannot tell real from fake here", f"model uncertain, p(fake) {p_fake:.2f}")],
            in_domain=True)
    return Verdict("real", [VerdictReason(
        "nothing_found", f"inside the checkpoint's domain, the model's p(fake) {p_fake:.3f} is below the threshold "
                         f"{threshold:.2f}, no segment is flagged and no training-free evidence with a time span reaches "
                         f"strength {STRONG_EVIDENCE:g}", "nothing found")], in_domain=True)


def _out_of_domain(m: ModalityResult) -> ModalityResult:
    """A stream's result when the file is outside the checkpoint's domain: its score is kept for
    reference, its verdict is ``unknown``."""
    if m.verdict == "unknown":
        return m
    note = "outside the checkpoint's domain: the score is not a verdict" + (f" ({m.note})" if m.note else "")
    return ModalityResult(m.available, m.score, "unknown", note)


class Detector:
    """A loaded model plus detection options: load once with :meth:`from_pretrained`, call
    :meth:`detect` on many files."""

    def __init__(self, model, checkpoint: str | Path = "(in memory)", device: str | None = None,
                 options: DetectOptions | None = None, weights_sha256: str | None = None,
                 checkpoint_warning: str | None = None, domain: Domain | None = None):
        import torch

        self.checkpoint_warning = checkpoint_warning  # carried into every report's warnings
        self.domain = domain or Domain()  # what the checkpoint's training covered (verdict rule)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.checkpoint = str(checkpoint)
        self.options = options or DetectOptions()
        self.options.validate()
        if weights_sha256 is None:
            p = Path(checkpoint)
            weights_sha256 = _sha256_or_none(p / "model.safetensors" if p.is_dir() else p)
        self.weights_sha256 = weights_sha256

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path | None = None, device: str | None = None,
                        options: DetectOptions | None = None, **option_overrides) -> "Detector":
        """Load a checkpoint folder (``model.safetensors`` + ``config.json``), or a shipped
        checkpoint by name (e.g. ``"avdetect-small-synth"``, see :func:`resolve_checkpoint`); None:
        the default. Its ``calibration.json`` (:func:`read_calibration`) sets the threshold, the
        caveat and the :class:`~avdetect.domain.Domain` the verdict rule checks files against.

        Raises :class:`CheckpointNotFoundError` when the folder is missing (for the default
        checkpoint, with how to get it) and :class:`CheckpointError` for broken checkpoints.
        """
        import torch

        from avdetect.models import AVDetector

        path = resolve_checkpoint(checkpoint)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = AVDetector.from_pretrained(path, map_location=device)
        folder = path.parent if path.is_file() else path
        opts = options or DetectOptions()
        calibration = read_calibration(folder)
        if options is None and "threshold" not in option_overrides and calibration is not None:
            opts = replace(opts, threshold=calibration["threshold"],  # the checkpoint's operating point
                           real_below=calibration.get("real_below"))
        if option_overrides:
            opts = replace(opts, **option_overrides)
        return cls(model, checkpoint=folder, device=device, options=opts,
                   weights_sha256=_sha256_or_none(folder / "model.safetensors"),
                   checkpoint_warning=calibration["warning"] if calibration else None,
                   domain=calibration["domain"] if calibration else None)

    # ------------------------------------------------------------------ detection
    def detect(self, path: str | os.PathLike, quiet: bool = True, **option_overrides) -> DetectionReport:
        """Detect and localise manipulations in one file. Options override :attr:`options`.

        Raises :class:`avdetect.errors.MediaError` subclasses for unreadable input.
        """
        import torch

        opts = replace(self.options, **option_overrides) if option_overrides else self.options
        opts.validate()
        started = _dt.datetime.now(_dt.timezone.utc)
        t_start = time.perf_counter()
        stages: dict[str, float] = {}

        t0 = time.perf_counter()
        media = load_media(path, max_side=opts.max_side)
        info = media.info
        stages["inspect"] = time.perf_counter() - t0

        cfg = self.model.config
        window = int(cfg.window_frames)
        hop = int(opts.hop or max(1, (3 * window) // 4))
        has_video, has_audio = bool(info.has_video), bool(info.has_audio)
        n = info.n_frames if has_video else -(-info.n_samples // SAMPLES_PER_FRAME)
        if n < 1:
            raise MediaError("the file holds no frame and no audio sample to analyse", info.path)

        faces = face_feats = None
        if has_video:
            from avdetect.faces import FaceTracker

            tracker = FaceTracker(backend=opts.face_backend, crops=True)
            chunks = tracker.iter_windows(media, window=hop)
            faces = _FaceStream(_Prefetch(chunks) if opts.prefetch else chunks, n, keep_face=bool(cfg.visual.use_face))
            face_feats = self._face_feature_hook(faces, media, opts)
        audio = _AudioStream(media, opts.audio_chunk_s) if has_audio else None
        audio_frames = min(n, -(-info.n_samples // SAMPLES_PER_FRAME)) if has_audio else 0
        audio_mask_all = np.arange(n) < audio_frames
        audio_level = np.zeros(n, np.float32)
        meter = DomainMeter(n, has_video, has_audio, audio_frames)  # the domain checks' measurements
        t_meter = 0.0

        stitch = {k: TrackStitcher(n, taper=max(1, window // 4)) for k in ("visual", "audio", "fused", "sync")}
        clip_probs: list[float] = []
        clip_weights: list[int] = []  # frames of the clip in each window
        cat_probs: list[np.ndarray] = []
        centre = int(cfg.sync.max_offset)
        t_model = 0.0
        from tqdm import tqdm

        starts = _window_starts(n, window, hop)
        done_to = 0
        with torch.inference_mode(), contextlib.ExitStack() as stack:
            if faces is not None:
                stack.callback(faces.close)  # stops the decoder, also on errors
            bar = stack.enter_context(tqdm(total=n, unit="frame", desc=Path(info.path).name[:30], disable=quiet,
                                           leave=False))
            for s in starts:
                e = min(n, s + window)
                length = e - s
                mouth_t = face_t = vmask = None
                if faces is not None:
                    mouth, face, valid = faces.window(s, e)
                    t1 = time.perf_counter()
                    meter.add_mouths(s, mouth, valid, faces.mouth_boxes[s:e])
                    t_meter += time.perf_counter() - t1
                    vmask = np.zeros(window, bool)
                    vmask[:length] = valid
                    m = np.zeros((window, *mouth.shape[1:]), np.uint8)
                    m[:length] = mouth
                    mouth_t = torch.from_numpy(m).permute(0, 3, 1, 2)[None].to(self.device)  # (1, T, 3, H, W)
                    if face is not None:
                        f = np.zeros((window, *face.shape[1:]), np.uint8)
                        f[:length] = face
                        face_t = torch.from_numpy(f).permute(0, 3, 1, 2)[None].to(self.device)  # (1, T, 3, H, W)
                audio_t = amask = None
                if audio is not None:
                    wav = np.zeros(window * SAMPLES_PER_FRAME, np.float32)
                    wav[:length * SAMPLES_PER_FRAME] = audio.samples(frame_to_sample(s), frame_to_sample(e))
                    amask = np.zeros(window, bool)
                    amask[:length] = audio_mask_all[s:e]
                    lv = np.abs(wav[:length * SAMPLES_PER_FRAME]).reshape(length, SAMPLES_PER_FRAME).max(axis=1)
                    audio_level[s:e] = lv
                    t1 = time.perf_counter()
                    meter.add_audio(frame_to_sample(s), wav[:length * SAMPLES_PER_FRAME])
                    t_meter += time.perf_counter() - t1
                    audio_t = torch.from_numpy(wav)[None].to(self.device)  # (1, T * 640)
                if mouth_t is None and audio_t is None:
                    raise MediaError("neither video nor audio could be read", info.path)
                t1 = time.perf_counter()
                out = self.model(
                    mouth_t, audio_t, face=face_t,
                    visual_mask=None if vmask is None else torch.from_numpy(vmask)[None].to(self.device),
                    audio_mask=None if amask is None else torch.from_numpy(amask)[None].to(self.device),
                )
                t_model += time.perf_counter() - t1
                sl = slice(0, length)
                bnd = torch.sigmoid(out.boundary_logits[0, sl].float()).cpu().numpy()  # (t, 2)
                dist = out.boundary_offsets[0, sl].float().cpu().numpy()  # (t, 2) frames
                for name, logits in (("visual", out.frame_visual_logits), ("audio", out.frame_audio_logits),
                                     ("fused", out.frame_fused_logits)):
                    p = torch.sigmoid(logits[0, sl].float()).cpu().numpy()
                    stitch[name].add(s, ScoreTrack(frame=p, start=bnd[:, 0], end=bnd[:, 1],
                                                   start_dist=dist[:, 0], end_dist=dist[:, 1]))
                sync_p = torch.softmax(out.sync_logits[0, sl].float(), dim=-1)[:, centre]  # (t,) in sync
                stitch["sync"].add(s, ScoreTrack(frame=(1.0 - sync_p).cpu().numpy()))
                if bool(out.frame_mask[0].any()):
                    clip_probs.append(float(torch.sigmoid(out.clip_logits[0].float())))
                    clip_weights.append(length)
                    cat_probs.append(torch.softmax(out.category_logits[0].float(), dim=-1).cpu().numpy())
                bar.update(e - done_to if e > done_to else 0)
                done_to = max(done_to, e)
        stages["model"] = t_model
        if faces is not None:
            stages["decode_faces"] = faces.seconds
        if audio is not None:
            stages["decode_audio"] = audio.seconds

        # ---------------------------------------------------------------- tracks -> segments
        t0 = time.perf_counter()
        tracks = {k: v.result() for k, v in stitch.items()}
        vmask_all = faces.valid if faces is not None else np.zeros(n, bool)
        fmask_all = vmask_all | audio_mask_all
        coverage = float(vmask_all.mean()) if has_video else 0.0
        visual_ok = has_video and coverage >= opts.min_face_coverage and bool(vmask_all.any())

        def masked(track: ScoreTrack, mask: np.ndarray) -> ScoreTrack:
            return ScoreTrack(frame=np.where(mask, track.frame, 0.0), start=track.start, end=track.end,
                              start_dist=track.start_dist, end_dist=track.end_dist)

        use = {"fused": (tracks["fused"], fmask_all)}
        if vmask_all.any():
            use["visual"] = (tracks["visual"], vmask_all)
        if has_audio:
            use["audio"] = (tracks["audio"], audio_mask_all)
        pcfg = ProposalConfig()
        proposals = {k: propose(masked(t, m), pcfg) for k, (t, m) in use.items()}
        segments = self._flag_segments(proposals["fused"], tracks, vmask_all, audio_mask_all, opts)
        stages["localisation"] = time.perf_counter() - t0

        # ---------------------------------------------------------------- domain checks
        t0 = time.perf_counter()
        facts = meter.finish(vmask_all if has_video else None, faces.boxes if faces is not None else None,
                             faces.last_track.tracks if faces is not None and faces.last_track is not None else [],
                             tuple(media.working_size), tuple(info.source_size) if has_video else (0, 0))
        domain_reasons = check_domain(facts, self.domain)
        stages["domain"] = t_meter + time.perf_counter() - t0

        # ---------------------------------------------------------------- scores
        width = FPS // 2  # 0.5 s: a stream's score is its most-fake half second
        thr = opts.threshold
        v_score = _moving_max(tracks["visual"].frame, vmask_all, width) if visual_ok else None
        a_score = _moving_max(tracks["audio"].frame, audio_mask_all, width) if has_audio else None
        visual = self._modality("visual", has_video, visual_ok, v_score, thr, coverage, opts.real_below)
        audio_res = self._modality("audio", has_audio, has_audio, a_score, thr, coverage, opts.real_below)
        # the clip probability: the windows' clip probabilities averaged, weighted by their frames (as
        # data/predict.py computes it for validation and calibration); a maximum over windows would
        # rise with the video's length alone (more windows, more chances), and long real videos
        # would cross a threshold set on short ones
        p_clip = float(np.average(clip_probs, weights=clip_weights)) if clip_probs else 0.0
        p_seg = max((s.visual_score if s.modality == "visual" else s.audio_score if s.modality == "audio"
                     else max(s.visual_score or 0.0, s.audio_score or 0.0)) or 0.0 for s in segments) if segments else 0.0
        # every judged stream counts: a stream verdict "fake" makes the file fake
        p_fake = max(p_clip, p_seg, v_score or 0.0, a_score or 0.0)
        unexamined = [] if (not has_video or visual_ok) else [visual.note]  # streams present but not examined
        from avdetect.models import CATEGORIES

        cats = cat_probs[int(np.argmax(clip_probs))] if cat_probs else np.full(len(CATEGORIES), 1.0 / len(CATEGORIES))

        # ---------------------------------------------------------------- warnings, evidence
        warnings = self._warnings(info, has_video, has_audio, coverage, visual_ok, faces, opts)
        if self.checkpoint_warning:
            warnings.insert(0, QualityWarning("checkpoint_domain", self.checkpoint_warning))
        t0 = time.perf_counter()
        evidence, forensics = self._forensics(media, opts, warnings, face_feats=face_feats)
        stages["forensics"] = time.perf_counter() - t0
        if face_feats is not None:
            stages["forensic_face_features"] = face_feats.seconds  # done while faces streamed past

        # ---------------------------------------------------------------- verdict
        decision = decide_verdict(p_fake, thr, segments, evidence, domain_reasons, unexamined, real_below=opts.real_below)
        if not decision.in_domain:  # no accusation outside the domain: proposals stay, nothing is flagged
            segments = []
            visual, audio_res = (_out_of_domain(m) for m in (visual, audio_res))
        explanation = self._explain(decision, p_fake, thr, visual, audio_res)

        # ---------------------------------------------------------------- thumbnails
        t0 = time.perf_counter()
        thumbs = self._thumbnails(media, segments, vmask_all, faces.boxes if faces else None) if (
            opts.thumbnails and has_video) else []
        stages["thumbnails"] = time.perf_counter() - t0

        # ---------------------------------------------------------------- provenance
        import torch as _torch

        run_time = time.perf_counter() - t_start
        stages = {k: _r(v, 4) for k, v in stages.items()}
        v_stream = next((s for s in info.streams if s.kind == "video"), None)
        params = {**asdict(opts), "hop": hop, "window_frames": window, "proposal_config": asdict(pcfg)}
        prov = Provenance(
            file_name=Path(info.path).name, file_path=str(Path(info.path).resolve()), sha256=media.sha256,
            size_bytes=int(info.size_bytes), duration_s=_r(info.duration, 4), container=info.container,
            video_codec=info.video_codec, audio_codec=info.audio_codec,
            source_size=list(info.source_size) if has_video else None,
            source_fps=float(info.source_fps) if has_video else None,
            audio_sample_rate=int(info.source_sample_rate) if has_audio else None,
            audio_channels=int(info.source_channels) if has_audio else None,
            media_warnings=list(info.warnings) + ([f"variable frame rate (declared {v_stream.fps} fps)"]
                                                  if v_stream is not None and info.variable_frame_rate else []),
            package="avdetect", package_version=__version__, model_name=cfg.name, checkpoint=self.checkpoint,
            weights_sha256=self.weights_sha256, model_parameters=int(self.model.num_parameters()),
            parameters=params, device=str(self.device), started_at=started.isoformat(timespec="seconds"),
            run_time_s=_r(run_time, 4), stage_seconds=stages, python_version=platform.python_version(),
            torch_version=_torch.__version__,
        )
        report = DetectionReport(
            file=str(path), verdict=decision.verdict, verdict_reasons=decision.reasons, verdict_rule=VERDICT_RULE,
            fake_probability=_r(p_fake), threshold=float(thr),
            category_probabilities={c: _r(p) for c, p in zip(CATEGORIES, cats)},
            visual=visual, audio=audio_res, segments=segments,
            proposals={k: [[_r(c, 5), _r(a, 3), _r(b, 3)] for c, a, b in v] for k, v in proposals.items()},
            tracks=Tracks(
                fps=float(FPS), start_s=0.0, n_frames=int(n),
                visual=_track_list(tracks["visual"].frame, vmask_all),
                audio=_track_list(tracks["audio"].frame, audio_mask_all),
                fused=_track_list(tracks["fused"].frame, fmask_all),
                sync=_track_list(tracks["sync"].frame, vmask_all & audio_mask_all),
                face=[int(v) for v in vmask_all],
                audio_level=_track_list(audio_level, audio_mask_all),
            ),
            face_coverage=_r(coverage, 4), warnings=warnings, evidence=evidence, forensics=forensics,
            thumbnails=thumbs, provenance=prov, explanation=explanation,
            extra={"domain": {"checkpoint": self.domain.to_dict(), "measured": facts.to_dict()}},
        )
        log.info("%s", report.summary())
        return report

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _flag_segments(fused_props: np.ndarray, tracks: dict, vmask: np.ndarray, amask: np.ndarray,
                       opts: DetectOptions) -> list[Segment]:
        """Proposals whose frames look fake on average (>= threshold), deduplicated, with
        neighbours closer than ``merge_gap_s`` joined (one event, not fragments), best first."""
        from avdetect.timegrid import seconds_to_frames_round

        thr = opts.threshold
        fused = tracks["fused"].frame
        kept: list[list] = []  # [start_frame, end_frame, mean fused p(fake)] in proposal rank order
        for conf, a_s, b_s in fused_props:
            if conf < opts.min_segment_score:
                continue
            a, b = int(seconds_to_frames_round(a_s)), int(seconds_to_frames_round(b_s))
            b = max(b, a + 1)
            p_fake = float(fused[a:b].mean())
            if p_fake < thr:
                continue
            # hard dedupe: soft-NMS keeps decayed near-duplicates in its ranked list
            if any(min(b, kb) - max(a, ka) > 0.3 * (max(b, kb) - min(a, ka)) for ka, kb, _ in kept):
                continue
            kept.append([a, b, p_fake])
        gap = int(seconds_to_frames_round(opts.merge_gap_s))
        merged: list[list] = []
        for a, b, _ in sorted(kept):
            if merged and a - merged[-1][1] <= gap:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b, 0.0])
        for m in merged:  # a segment's score: the mean fused p(fake) of its frames
            m[2] = float(fused[m[0] : m[1]].mean())
        out: list[Segment] = []
        for a, b, conf in sorted(merged, key=lambda m: -m[2]):
            if frames_to_seconds(b - a) < opts.min_segment_s - 1e-9 or len(out) >= opts.max_segments:
                continue
            vm, am = vmask[a:b], amask[a:b]
            v = float(tracks["visual"].frame[a:b][vm].mean()) if vm.any() else None
            au = float(tracks["audio"].frame[a:b][am].mean()) if am.any() else None
            if v is not None and au is not None and v >= thr and au >= thr:
                modality = "audio-visual"
            elif au is None or (v is not None and v >= au):
                modality = "visual"
            else:
                modality = "audio"
            out.append(Segment(start_s=_r(frames_to_seconds(a), 3), end_s=_r(frames_to_seconds(b), 3),
                               score=_r(min(1.0, conf), 4), modality=modality,
                               visual_score=None if v is None else _r(v, 4),
                               audio_score=None if au is None else _r(au, 4)))
        return out

    @staticmethod
    def _modality(name: str, present: bool, judged: bool, score: float | None, thr: float,
                  coverage: float, real_below: float | None = None) -> ModalityResult:
        if not present:
            note = "the file has no audio stream: audio branch skipped" if name == "audio" else \
                "the file has no video stream: visual branch skipped"
            return ModalityResult(False, None, "unknown", note)
        if not judged or score is None:
            return ModalityResult(True, None, "unknown",
                                  f"a face was found in {coverage:.0%} of frames: too few to judge the video")
        note = f"face in {coverage:.0%} of frames" if name == "visual" else ""
        if score >= thr:
            return ModalityResult(True, _r(score, 4), "fake", note)
        if real_below is not None and score >= min(real_below, thr):
            return ModalityResult(True, _r(score, 4), "unknown", "; ".join(
                x for x in (note, f"score between real_below {real_below:.2f} and the threshold: the model cannot tell") if x))
        return ModalityResult(True, _r(score, 4), "real", note)

    @staticmethod
    def _explain(decision: "Verdict", p_fake, thr, visual, audio) -> str:
        """The report's explanation: why the verdict first, then the model's readings."""
        readings = f"p(fake) = {p_fake:.3f} against a threshold of {thr:.2f}"
        why = "; ".join(r.message for r in decision.reasons)
        if not decision.in_domain:
            return (f"Outside the checkpoint's domain, so no verdict: {why}. For reference only, not a verdict: the "
                    f"model's {readings}; its ranked proposals are in the report, none is flagged.")
        head = {"fake": "Fake", "real": "Real", "unknown": "Unknown"}[decision.verdict]
        return f"{head}: {why}. The model's {readings}; visual: {visual.verdict}, audio: {audio.verdict}."

    @staticmethod
    def _warnings(info, has_video, has_audio, coverage, visual_ok, faces, opts) -> list[QualityWarning]:
        w: list[QualityWarning] = []
        if not has_audio:
            w.append(QualityWarning("no_audio", "the file has no audio stream: the audio branch was skipped and "
                                                "the audio verdict is unknown"))
        if not has_video:
            w.append(QualityWarning("no_video", "the file has no video stream: only the audio was examined"))
        elif coverage == 0.0:
            w.append(QualityWarning("no_face", "no face was found in any frame: the visual branch was masked and "
                                               "the visual verdict is unknown"))
        elif coverage < 0.95:
            w.append(QualityWarning("partial_face", f"no face in {1 - coverage:.0%} of frames: those frames were "
                                                    "judged on the audio only" + ("" if visual_ok else
                                                    "; too few faces for a visual verdict")))
        if info.duration < MIN_CLIP_S:
            w.append(QualityWarning("short_clip", f"very short clip ({info.duration:.2f} s): the model sees less "
                                                  "context than it was trained with"))
        if has_video:
            sw, sh = info.source_size
            if min(sw, sh) < LOW_RES_SIDE:
                w.append(QualityWarning("low_resolution", f"low resolution ({sw}x{sh}): fine visual artefacts may "
                                                          "be invisible"))
            track = faces.last_track if faces is not None else None
            if track is not None and track.faces:
                main = max(track.faces, key=lambda t: t.score)
                if main.mean_height < SMALL_FACE_FRAC:
                    w.append(QualityWarning("small_face", f"the main face is small ({main.mean_height:.0%} of the "
                                                          "frame height): mouth crops are upscaled"))
            if info.variable_frame_rate:
                w.append(QualityWarning("variable_frame_rate", "variable frame rate: frames were resampled onto a "
                                                               "constant 25 fps grid"))
        for text in info.warnings:
            w.append(QualityWarning("media", text))
        return w

    @staticmethod
    def _thumbnails(media, segments: list[Segment], valid: np.ndarray, boxes: np.ndarray | None) -> list[Thumbnail]:
        """One JPEG face crop per flagged segment, at its middle (nearest frame with a face)."""
        import cv2

        from avdetect.faces.crops import crop, face_crop_box
        from avdetect.timegrid import seconds_to_frame

        out: list[Thumbnail] = []
        for k, seg in enumerate(segments):
            a = seconds_to_frame(seg.start_s)
            b = max(a + 1, seconds_to_frame(seg.end_s))
            b = min(b, len(valid))
            mid = (a + b) // 2
            inside = np.flatnonzero(valid[a:b]) + a
            i = int(inside[np.argmin(np.abs(inside - mid))]) if len(inside) else min(mid, len(valid) - 1)
            frame = next(media.iter_frames(start=i, stop=i + 1))
            if boxes is not None and valid[i]:
                img = crop(frame, face_crop_box(boxes[i]), 128)
            else:  # no face: the whole frame, small
                h, w = frame.shape[:2]
                s = 160 / max(h, w)
                img = cv2.resize(frame, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise MediaError(f"could not encode a thumbnail of frame {i}", media.info.path)
            out.append(Thumbnail(segment=k, time_s=_r(frames_to_seconds(i), 3),
                                 jpeg_base64=base64.b64encode(buf.tobytes()).decode("ascii")))
        return out

    @staticmethod
    def _face_feature_hook(faces: "_FaceStream", media, opts: DetectOptions):
        """When forensics will run, reduce every face-track chunk to the forensic face features as it
        streams past (one decode and one face tracking for both). Returns a holder whose ``acc``
        is the accumulator (None after a failure) and ``seconds`` the time spent, or None. A
        failure here is logged and the forensic analysis then tracks faces itself, so detection
        is never lost to it."""
        if not opts.forensics:
            return None
        try:
            from avdetect.forensics.features import FaceFeatureAccumulator
        except ImportError:
            return None
        holder = SimpleNamespace(acc=FaceFeatureAccumulator(tuple(media.working_size)), seconds=0.0)

        def add(part) -> None:
            if holder.acc is None:
                return
            t0 = time.perf_counter()
            try:
                holder.acc.add(part)
                holder.seconds += time.perf_counter() - t0
            except Exception as err:  # logged, recorded; forensics falls back to its own tracking
                log.warning("%s: forensic face features failed (%s: %s); forensics will track faces itself",
                            media.info.path, type(err).__name__, err)
                holder.acc = None

        faces.on_chunk = add
        return holder

    @staticmethod
    def _forensics(media, opts: DetectOptions, warnings: list[QualityWarning],
                   face_feats=None) -> tuple[list[dict], dict[str, Any]]:
        """Evidence items from :func:`avdetect.forensics.analyze` when that package is importable."""
        info: dict[str, Any] = {"available": False, "ran": [], "skipped": {}, "error": None, "tracks": {}}
        import importlib
        import importlib.util
        import sys

        if "avdetect.forensics" not in sys.modules and importlib.util.find_spec("avdetect.forensics") is None:
            info["skipped"] = {"all": "avdetect.forensics is not installed"}
            return [], info
        info["available"] = True
        if not opts.forensics:
            info["skipped"] = {"all": "not requested (forensics=False)"}
            return [], info
        try:
            forensics = importlib.import_module("avdetect.forensics")
            ff = None
            if face_feats is not None and face_feats.acc is not None and face_feats.acc.n_frames >= media.n_frames:
                ff = face_feats.acc.result()
            res = forensics.analyze(media, face_track=None, face_feats=ff)
        except Exception as err:  # recorded in the report and logged, never hidden
            log.warning("%s: forensics failed: %s: %s", media.info.path, type(err).__name__, err)
            info["error"] = f"{type(err).__name__}: {err}"
            warnings.append(QualityWarning("forensics_failed", f"training-free forensics failed: {info['error']}"))
            return [], info
        items = [e.to_dict() if hasattr(e, "to_dict") else asdict(e) for e in res.evidence]
        info["ran"] = list(getattr(res, "ran", []))
        info["seconds"] = {k: _r(v, 4) for k, v in getattr(res, "seconds", {}).items()}
        info["shared_face_tracking"] = ff is not None
        info["skipped"] = {str(k): str(v) for k, v in getattr(res, "skipped", {}).items()}
        tracks = getattr(res, "tracks", {}) or {}
        info["tracks"] = {k: (t.to_dict() if hasattr(t, "to_dict") else t) for k, t in tracks.items()}
        return items, info


def detect(path: str | os.PathLike, checkpoint: str | Path | None = None, device: str | None = None,
           quiet: bool = True, **options) -> DetectionReport:
    """Detect and localise audio-visual manipulations in ``path``; see :class:`DetectOptions`.

    Loads the checkpoint on each call: for many files use :meth:`Detector.from_pretrained` once.
    """
    return Detector.from_pretrained(checkpoint, device=device).detect(path, quiet=quiet, **options)
