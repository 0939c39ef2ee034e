"""The ``sources`` stage of detect: one media file as the model's windows, streamed.

:func:`open_sources` starts face tracking (window by window, :meth:`FaceTracker.iter_windows`,
in a child process or a background thread one hop ahead of the model, see :func:`_face_chunks`)
and chunked audio decoding
(``audio_chunk_s`` seconds at a time); :meth:`Sources.windows` serves
:class:`avdetect.inference.WindowInputs` for any increasing sequence of window starts, holding
only the frames of the current window plus one hop. As windows pass, the domain checks'
measurements (:class:`avdetect.domain.DomainMeter`), the per-frame audio level and, when
forensics will run, the forensic face features are gathered, so the file is decoded and its
faces tracked once for all of them.
"""
from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Iterator

import numpy as np

from avdetect._threads import BackgroundCall
from avdetect.domain import DomainFacts, DomainMeter
from avdetect.errors import MediaError
from avdetect.inference import WindowInputs
from avdetect.media import Prefetch
from avdetect.timegrid import (SAMPLES_PER_FRAME, frame_to_sample, n_samples_for_duration, samples_to_seconds,
                               seconds_to_frame)

log = logging.getLogger(__name__)


class FaceStream:
    """Pulls :class:`FaceTrack` chunks and serves any frame range at or after the last drop."""

    def __init__(self, chunks: Iterator, n_frames: int, keep_face: bool):
        self._chunks = chunks
        self.n_frames = n_frames
        self.keep_face = keep_face
        self._parts: list = []  # FaceTrack chunks covering the frames still needed
        self.end = 0
        self.valid = np.zeros(n_frames, bool)  # whole video, for the report (1 byte per frame)
        self.boxes = np.zeros((n_frames, 4), np.float32)  # for thumbnails
        self.mouth_boxes = np.zeros((n_frames, 4), np.float32)  # for the still-video check
        self.track_ids = np.full(n_frames, -1, np.int32)  # the face judged in each frame (the report names it)
        self.stills: dict[int, tuple[str, str]] = {}  # FaceTrack.stills of the whole video, for the report's thumbnails
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
            self.track_ids[a:b] = part.track_ids
            self.stills.update(part.stills)
            self.last_track = part
            if self.on_chunk is not None:
                self.on_chunk(part)
            self._parts.append(part)
            self.end = b

    def drain(self) -> None:
        """Read the stream to its end (after the last window a face worker sends its evidence)."""
        for _ in self._chunks:
            pass

    def close(self) -> None:
        """Stop the decoder (the face generator's cleanup kills its ffmpeg)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def window(self, a: int, b: int):
        """(mouth (n, 96, 96, 3), face (n, 128, 128, 3) or None, valid (n,)) for frames [a, b)."""
        self._pull(b)
        while self._parts and self._parts[0].start_frame + len(self._parts[0]) <= a:  # windows only move forward
            self._parts.pop(0)
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


class AudioStream:
    """Audio samples of any range at or after the last one asked for, decoded in chunks. The next
    chunk is decoded in a background thread (from the start, while the model loads), so the
    caller waits for audio only when it outruns the decoder; the chunks, and so the samples, are
    the same as decoding each when it is needed. ``seconds``: the time spent waiting."""

    def __init__(self, media, chunk_s: float):
        self.media = media
        self.n_samples = media.n_samples
        self.chunk = n_samples_for_duration(round(chunk_s))
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0  # sample index of buf[0]
        self.next_chunk = 0  # sample index where the next decode starts
        self.seconds = 0.0
        self._ahead = self._decode_next()  # (its end, the decode of the chunk at next_chunk, running)

    def _decode_next(self) -> tuple[int, BackgroundCall] | None:
        if self.next_chunk >= self.n_samples:
            return None
        stop = min(self.n_samples, self.next_chunk + self.chunk)
        return stop, BackgroundCall(self.media.read_audio, samples_to_seconds(self.next_chunk), samples_to_seconds(stop),
                                    name="avdetect-audio")

    def samples(self, a: int, b: int) -> np.ndarray:
        """Samples [a, b) (zeros past the end of the audio stream)."""
        while self.next_chunk < min(b, self.n_samples):
            t0 = time.perf_counter()
            stop, call = self._ahead
            got = call.result()  # samples [next_chunk, stop); a decoding error is raised here
            keep_from = min(max(0, a - self.buf_start), len(self.buf))  # buf then starts where `got` does
            self.buf = np.concatenate([self.buf[keep_from:], got])
            self.buf_start += keep_from
            self.next_chunk += len(got) if len(got) else stop - self.next_chunk
            self._ahead = self._decode_next()
            self.seconds += time.perf_counter() - t0
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, self.buf_start), min(b, self.buf_start + len(self.buf))
        if hi > lo:
            out[lo - a:hi - a] = self.buf[lo - self.buf_start:hi - self.buf_start]
        return out


class Sources:
    """One file's streams for detect (module docstring). Use as a context manager, or :meth:`close`."""

    def __init__(self, media, keep_face: bool, *, face_backend: str = "auto", chunk_frames: int = 75,
                 audio_chunk_s: float = 60.0, prefetch: str = "process", face_features: bool = False):
        info = media.info
        self.media = media
        self.has_video, self.has_audio = bool(info.has_video), bool(info.has_audio)
        n_audio = -(-info.n_samples // SAMPLES_PER_FRAME)  # frames the audio reaches into
        self.n_frames = n = info.n_frames if self.has_video else n_audio
        if n < 1:
            raise MediaError("the file holds no frame and no audio sample to analyse", info.path)
        self.audio_frames = min(n, n_audio) if self.has_audio else 0
        # a stream that starts late is padded up to its start (silence; the first picture held):
        # those frames are not the stream's, so the model and the report see them as missing
        self.audio_from = _first_frame(info, "audio")
        self.video_from = _first_frame(info, "video")
        self.faces: FaceStream | None = None
        self._worker = None  # the face worker process, when faces are tracked in one
        self.face_features = None
        if self.has_video:
            chunks, self._worker = _face_chunks(media, face_backend, chunk_frames, keep_face, face_features, prefetch)
            self.faces = FaceStream(chunks, n, keep_face)
            if face_features:
                self.face_features = _face_feature_hook(self.faces, media)
        self.audio = AudioStream(media, audio_chunk_s) if self.has_audio else None
        #: the evidence stage's audio step (per-frame features and the VAD), started now where this
        #: process runs the stage (no face worker does: an audio-only file, faces tracked in a
        #: thread or in line), so that it runs beside the model instead of after it (an
        #: :class:`~avdetect.forensics.analyze.AudioPrefetch`; None otherwise)
        self.evidence_audio = None
        if face_features and self.has_audio and self._worker is None:
            from avdetect.forensics.analyze import AudioPrefetch

            self.evidence_audio = AudioPrefetch(media)
        self.audio_level = np.zeros(n, np.float32)  # per-frame peak |sample|, for the report's waveform strip
        self.meter = DomainMeter(n, self.has_video, self.has_audio, self.audio_frames)
        self.meter_seconds = 0.0

    # -- the streams, as the model sees them
    def window(self, s: int, e: int) -> WindowInputs:
        """The model's inputs for frames [s, e), measured for the domain checks on the way."""
        w = WindowInputs(start=s, length=e - s)
        if self.faces is not None:
            w.mouth, w.face, w.valid = self.faces.window(s, e)
            if s < self.video_from:
                w.valid = w.valid & (np.arange(s, e) >= self.video_from)
            t0 = time.perf_counter()
            self.meter.add_mouths(s, w.mouth, w.valid, self.faces.mouth_boxes[s:e])
            self.meter_seconds += time.perf_counter() - t0
        if self.audio is not None:
            w.audio = self.audio.samples(frame_to_sample(s), frame_to_sample(e))
            frames = np.arange(s, e)
            w.audio_valid = (frames < self.audio_frames) & (frames >= self.audio_from)
            self.audio_level[s:e] = np.abs(w.audio).reshape(e - s, SAMPLES_PER_FRAME).max(axis=1)
            t0 = time.perf_counter()
            self.meter.add_audio(frame_to_sample(s), w.audio)
            self.meter_seconds += time.perf_counter() - t0
        if w.mouth is None and w.audio is None:
            raise MediaError("neither video nor audio could be read", self.media.info.path)
        return w

    def windows(self, starts: list[int], window: int, progress=None) -> Iterator[WindowInputs]:
        """:meth:`window` for each start (increasing), ``window`` frames or up to the end;
        ``progress(frames)`` is called with the frames newly covered."""
        done_to = 0
        for s in starts:
            e = min(self.n_frames, s + window)
            yield self.window(s, e)
            if progress is not None and e > done_to:
                progress(e - done_to)
            done_to = max(done_to, e)

    # -- what was gathered on the way
    def domain_facts(self) -> DomainFacts:
        """The domain checks' measurements (:meth:`DomainMeter.finish`), once the windows have run."""
        f = self.faces
        info = self.media.info
        facts = self.meter.finish(f.valid if f is not None else None, f.boxes if f is not None else None,
                                  f.last_track.tracks if f is not None and f.last_track is not None else [],
                                  tuple(self.media.working_size), tuple(info.source_size) if self.has_video else (0, 0))
        return facts

    def forensic_face_features(self):
        """The forensic face features gathered while faces streamed past, or None (not requested,
        failed, or incomplete: forensics then tracks faces itself)."""
        h = self.face_features
        if h is None or h.acc is None or h.acc.n_frames < self.media.n_frames:
            return None
        return h.acc.result()

    def worker_finished(self) -> bool:
        """Faces are tracked in a worker process that has finished all its work (its core is free)."""
        return self._worker is not None and self._worker.finished

    def worker_evidence(self) -> dict | None:
        """The evidence stage as the face worker process ran it (``{"items", "info"}`` or
        ``{"error"}``), once it has ended; None when faces were not tracked in a worker or it
        did not run the stage (forensics not requested, or its face features failed): the
        caller then runs it here."""
        if self._worker is None or self.faces is None:
            return None
        try:
            self.faces.drain()
        except MediaError as err:  # the worker died after the last window: the stage failed
            return {"error": f"{type(err).__name__}: {err.message}"}
        return self._worker.evidence

    def stage_seconds(self) -> dict[str, float]:
        out = {}
        if self.faces is not None:
            out["decode_faces"] = self.faces.seconds
        if self.audio is not None:
            out["decode_audio"] = self.audio.seconds
        if self.face_features is not None:
            out["forensic_face_features"] = self.face_features.seconds  # done while faces streamed past
        return out

    def close(self) -> None:
        if self.faces is not None:
            self.faces.close()  # stops the decoder, also on errors

    def __enter__(self) -> "Sources":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_frame(info, kind: str) -> int:
    """The first 25 fps frame not wholly before the start of the ``kind`` stream (0 unless the
    stream starts a frame or more after the container)."""
    stream = next((st for st in info.streams if st.kind == kind), None)
    return seconds_to_frame(stream.start) if stream is not None else 0


#: Where faces are tracked while the model runs (:class:`avdetect.api.DetectOptions` ``prefetch``).
PREFETCH_MODES = ("process", "thread", "none")
#: Seconds of video the face worker process may track ahead of the model.
PROCESS_LOOKAHEAD_S = 60.0


def _face_chunks(media, backend: str, chunk_frames: int, keep_face: bool, face_features: bool, prefetch: str):
    """The face-track windows of ``media``: tracked in a child process (``"process"``, what
    ``detect``'s ``"auto"`` picks for long files and while the model loads:
    :class:`avdetect.faces.worker.FaceWorker`, beside the model on another core and
    with the forensic face features computed there too), in a background thread (``"thread"``,
    and for a face backend registered at run time, which a child process cannot build) or in
    line (``"none"``); the windows are the same in all three. The thread reads one window ahead
    of the model, the process up to :data:`PROCESS_LOOKAHEAD_S` of video. Returns (the windows, the :class:`FaceWorker` or None); a worker
    also runs the evidence stage when ``face_features`` (forensics) is asked."""
    from avdetect.faces import FaceTracker
    from avdetect.faces.worker import BUILTIN_BACKENDS, FaceWorker

    if prefetch not in PREFETCH_MODES:
        raise ValueError(f"prefetch must be one of {PREFETCH_MODES}, got {prefetch!r}")
    if prefetch == "process" and backend in BUILTIN_BACKENDS:
        worker = FaceWorker(media, backend, chunk_frames, keep_face=keep_face, face_features=face_features,
                            evidence=face_features)
        # read up to PROCESS_LOOKAHEAD_S ahead, so that the worker does not wait while the model
        # loads (seconds): about 1.1 MB a second of video held (mouth crops, and face crops only
        # where the model reads them)
        depth = max(2, seconds_to_frame(PROCESS_LOOKAHEAD_S) // max(1, chunk_frames))
        return Prefetch(worker, depth=depth, name="avdetect-faces", interrupt=worker.kill), worker
    chunks = FaceTracker(backend=backend, crops=True).iter_windows(media, window=chunk_frames)
    return (chunks if prefetch == "none" else Prefetch(chunks, name="avdetect-faces")), None


def _face_feature_hook(faces: FaceStream, media):
    """Reduce every face-track chunk to the forensic face features as it streams past. Returns a
    holder whose ``acc`` is the accumulator (None after a failure) and ``seconds`` the time spent.
    A failure here is logged and the forensic analysis then tracks faces itself, so detection is
    never lost to it."""
    from avdetect.forensics.features import FaceFeatureAccumulator

    holder = SimpleNamespace(acc=FaceFeatureAccumulator(tuple(media.working_size)), seconds=0.0)

    def add(part) -> None:
        if holder.acc is None:
            return
        t0 = time.perf_counter()
        try:
            if getattr(part, "forensic_error", None):  # the face worker could not compute them
                raise RuntimeError(part.forensic_error)
            if getattr(part, "forensic", None) is not None:  # computed in the face worker
                holder.acc.add_features(part.start_frame, part.forensic)
                holder.seconds += part.forensic_seconds
            else:
                holder.acc.add(part)
                holder.seconds += time.perf_counter() - t0
        except Exception as err:  # logged and recorded; forensics falls back to its own tracking
            log.warning("%s: forensic face features failed (%s: %s); forensics will track faces itself",
                        media.info.path, type(err).__name__, err)
            holder.acc = None

    faces.on_chunk = add
    return holder


def open_sources(media, model_config, opts) -> Sources:
    """The sources stage: :class:`Sources` for ``media`` as a model with ``model_config`` reads it
    under :class:`avdetect.api.DetectOptions` ``opts`` (face chunks of one hop)."""
    from avdetect.inference import default_hop

    hop = int(opts.hop or default_hop(int(model_config.window_frames)))
    return Sources(media, keep_face=bool(model_config.visual.use_face), face_backend=opts.face_backend,
                   chunk_frames=hop, audio_chunk_s=opts.audio_chunk_s, prefetch=opts.prefetch,
                   face_features=opts.forensics)
