"""Face tracking in a child process, so that it runs beside the model on another core.

Python threads share one interpreter lock: a face tracker in a thread (many small OpenCV and
NumPy calls per frame) and the model's start-up (importing torch, seconds of pure Python) take
turns instead of running at once. :class:`FaceWorker` runs
:meth:`avdetect.faces.FaceTracker.iter_windows` (decode, detection, tracking, crops) and, when
asked, the forensic face features of each window (:func:`avdetect.forensics.features.window_features`)
in ``python -m avdetect.faces.worker``, and hands the windows back in order as
:class:`~avdetect.faces.FaceTrack` objects with the same arrays, bit for bit, as tracking in
this process gives. On 2 cores or fewer its ffmpeg decodes on one thread (:func:`decode_threads`);
the evidence stage's audio step starts in a thread of its own before
the first window (:class:`avdetect.forensics.analyze.AudioPrefetch`).

The child is a fresh interpreter started with ``subprocess`` (not ``multiprocessing``, which
would re-run an unguarded caller script), so it knows only the built-in face backends
(:data:`BUILTIN_BACKENDS`); callers use a thread for any other. It dies with its parent (Linux
parent-death signal), stops when its output pipe closes, and is killed by :meth:`FaceWorker.close`.

**Messages** on the child's stdout, one after another: an 8-byte little-endian length, a JSON
header ``{"kind", "meta", "arrays": [[name, dtype, shape], ...]}``, then each array's raw bytes
in that order. Kinds: ``window`` (a FaceTrack; with ``features`` arrays when asked), ``evidence`` (the evidence stage's JSON: :func:`_evidence`), ``log`` (a
log record, logged here under the child's logger name), ``error`` (an :mod:`avdetect.errors`
class name and message, raised here as that class), ``done``. Nothing is pickled.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict

import numpy as np

from avdetect._process import child_env, enlarge_pipe

log = logging.getLogger(__name__)

#: Backends a fresh interpreter registers on ``import avdetect.faces`` (others are run in a thread).
BUILTIN_BACKENDS = ("opencv", "mediapipe", "face-alignment", "auto")
_TRACK_ARRAYS = ("boxes", "mouth_boxes", "confidence", "valid", "track_ids", "mouth", "face", "features", "roll")
_LEN = struct.Struct("<Q")


# -- the wire format ------------------------------------------------------------------------
_MAX_HEADER = 1 << 24  # bytes: a window's header is a few kB
_MAX_ARRAY = 1 << 32  # bytes: a window's largest array (face crops of 256 frames) is 12.6 MB

#: One message at a time on the child's stdout: the windows are sent by the main thread, log
#: records by whichever thread logs (the evidence's audio step runs in one of its own), and two
#: messages written at once would interleave their bytes.
_SEND_LOCK = threading.Lock()


def _send(out, kind: str, meta: dict | None = None, arrays: dict | None = None) -> None:
    arrays = {k: np.ascontiguousarray(v) for k, v in (arrays or {}).items() if v is not None}
    header = json.dumps({"kind": kind, "meta": meta or {},
                         "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]}).encode()
    with _SEND_LOCK:
        out.write(_LEN.pack(len(header)))
        out.write(header)
        for v in arrays.values():
            out.write(memoryview(v).cast("B"))
        out.flush()


def _read_exact(stream, view: memoryview, at_start: bool = False) -> bool:
    """Fill ``view`` from ``stream``. False at the end of the stream before the first byte when
    ``at_start`` (between messages); an end anywhere else is a message cut short: EOFError."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            if got == 0 and at_start:
                return False
            raise EOFError(f"face worker output ended inside a message ({got} of {len(view)} bytes)")
        got += n
    return True


def _receive(stream) -> tuple[str, dict, dict] | None:
    """One message (kind, meta, arrays), or None at the end of the stream."""
    size = bytearray(_LEN.size)
    if not _read_exact(stream, memoryview(size), at_start=True):
        return None
    (n,) = _LEN.unpack(size)
    if n > _MAX_HEADER:  # a garbled length: never allocate it
        raise RuntimeError(f"face worker sent a corrupt message (a header of {n} bytes)")
    header = bytearray(n)
    _read_exact(stream, memoryview(header))
    head = json.loads(header)
    arrays = {}
    for name, dtype, shape in head["arrays"]:
        dt = np.dtype(dtype)
        if int(np.prod(shape, dtype=np.float64)) * dt.itemsize > _MAX_ARRAY:
            raise RuntimeError(f"face worker sent a corrupt message (array {name} of shape {shape})")
        a = np.empty(shape, dt)
        if a.nbytes:
            _read_exact(stream, memoryview(a).cast("B"))
        arrays[name] = a
    return head["kind"], head["meta"], arrays


def _media_info_from_dict(d: dict):
    from avdetect.media import MediaInfo, StreamInfo

    d = dict(d)
    d["working_size"], d["source_size"] = tuple(d["working_size"]), tuple(d["source_size"])
    d["streams"] = [StreamInfo(**s) for s in d["streams"]]
    return MediaInfo(**d)


# -- the parent's side ------------------------------------------------------------------------
class FaceWorker:
    """Iterator over the :class:`~avdetect.faces.FaceTrack` windows of ``media``, tracked in a
    child process (module docstring). Each window carries ``forensic``: its forensic face
    features (a dict of arrays, :func:`~avdetect.forensics.features.window_features`) when
    ``face_features`` was asked and they could be computed, else None, and ``forensic_error``:
    why not (None when they were). ``keep_face=False`` drops the face crops once the features
    are taken (the model does not read them): windows then have ``face`` None. With
    ``evidence``, the child also runs the detection's evidence stage after the last window
    (:func:`avdetect.forensics.analyze` on the face features it computed, while the parent still
    runs the model): :attr:`evidence` is then ``{"items", "info"}`` (or ``{"error"}``) once the
    iteration has ended."""

    def __init__(self, media, backend: str, window: int, *, keep_face: bool = True, face_features: bool = False,
                 evidence: bool = False):
        if backend not in BUILTIN_BACKENDS:
            raise ValueError(f"face backend {backend!r} is not built in: a child process cannot build it")
        spec = {"media": media.info.to_dict(), "stall_timeout": media.stall_timeout, "backend": backend,
                "window": int(window), "keep_face": bool(keep_face), "face_features": bool(face_features or evidence),
                "evidence": bool(evidence),
                "parent": os.getpid()}
        self._stderr = tempfile.TemporaryFile()  # a file, never a pipe: a chatty child cannot block on it
        self._proc = subprocess.Popen([sys.executable, "-m", "avdetect.faces.worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, bufsize=1 << 16, env=child_env())
        enlarge_pipe(self._proc.stdout.fileno())  # a window's crops are megabytes
        self._proc.stdin.write(json.dumps(spec).encode() + b"\n")
        self._proc.stdin.close()  # the spec is all the child reads
        self._path = media.info.path
        self._done = False
        self.evidence: dict | None = None  # the evidence stage's result, once the last window is read

    def __iter__(self):
        return self

    def __next__(self):
        from avdetect.faces.tracking import FaceTrack, TrackSummary

        while not self._done:
            try:
                msg = _receive(self._proc.stdout)
            except EOFError:  # killed mid-message (out of memory, a signal): as if it ended there
                msg = None
            if msg is None:
                self._done = True
                raise self._died()
            kind, meta, arrays = msg
            if kind == "log":
                logging.getLogger(meta["name"]).log(meta["level"], "%s", meta["message"])
            elif kind == "error":
                self._done = True
                raise _rebuild_error(meta, self._path)
            elif kind == "evidence":
                self.evidence = meta
            elif kind == "done":
                self._done = True
            elif kind == "window":
                track = FaceTrack(start_frame=meta["start_frame"], frame_size=tuple(meta["frame_size"]),
                                  backend=meta["backend"], seconds=meta["seconds"],
                                  tracks=[TrackSummary(**t) for t in meta["tracks"]],
                                  stills={int(k): tuple(v) for k, v in meta.get("stills", {}).items()},
                                  **{k: arrays.get(k) for k in _TRACK_ARRAYS})
                feats = {k[2:]: v for k, v in arrays.items() if k.startswith("f.")}
                track.forensic = feats or None
                track.forensic_error = meta.get("forensic_error")
                track.forensic_seconds = float(meta.get("forensic_seconds", 0.0))
                return track
            else:
                raise RuntimeError(f"face worker sent an unknown message {kind!r}")
        raise StopIteration

    @property
    def finished(self) -> bool:
        """The child has sent everything (its last window and, when asked, the evidence): its core is free."""
        return self._done

    def _died(self) -> Exception:
        from avdetect.errors import MediaError

        code = self._proc.wait()
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else "no message"
        return MediaError(f"face tracking stopped: its worker process exited with code {code} ({why})", self._path)

    def kill(self) -> None:
        """Stop the child now (a reader blocked on its output then sees the end of the stream)."""
        if self._proc.poll() is None:
            self._proc.kill()

    def close(self) -> None:
        """Stop the child and release its pipes (idempotent)."""
        self.kill()
        self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()
        self._done = True


def _rebuild_error(meta: dict, path: str) -> Exception:
    from avdetect import errors

    cls = getattr(errors, meta.get("type", ""), None)
    if isinstance(cls, type) and issubclass(cls, errors.AVDetectError):
        return cls(meta["message"], meta.get("path"))
    # not an error of the input: a bug, raised as one (its traceback is in the child's stderr)
    return RuntimeError(f"face tracking failed in its worker process on {path}: {meta.get('type')}: {meta['message']}")


# -- the child's side -------------------------------------------------------------------------
class _Forward(logging.Handler):
    """Send log records to the parent, which logs them under the same logger."""

    def __init__(self, out):
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        _send(self.out, "log", {"name": record.name, "level": record.levelno, "message": record.getMessage()})


def _evidence(media, face_feats, audio_prefetch=None) -> dict:
    """The detection's evidence stage (:func:`avdetect.evidence.gather_evidence`), run here once
    the faces are done, while the parent still runs the model (its audio step started in a thread
    before the faces: ``audio_prefetch``): ``{"items", "info"}`` or ``{"error"}``."""
    from avdetect.forensics import analyze

    try:
        res = analyze(media, face_track=None, face_feats=face_feats, audio_prefetch=audio_prefetch)
    except Exception as err:  # the parent records it as it records a failure of its own analysis
        return {"error": f"{type(err).__name__}: {err}"}
    return {"items": res.evidence_dicts(), "info": res.report_dict()}


def decode_threads() -> int | None:
    """Threads ffmpeg decodes the video with in this process: 1 on 2 cores or fewer, else None
    (its own choice). This process is one of several sharing those cores (the model's, ffmpeg's),
    and there ffmpeg's thread pool costs CPU without gaining time: measured on 2 cores, one
    thread took 0.5 CPU-s less per 2 minutes of 512-px video, the whole detect 0.89x the wall
    time (1080p: 0.96x), and still decodes 1600 frames a second (1080p: 150). OpenCV's own
    threads are left alone: limiting them to one was a wash at 2 minutes (0.98x) and slower on
    1080p (1.08x), where the tracking is the longest path and the model's core is often idle."""
    from avdetect._process import usable_cores

    return 1 if usable_cores() <= 2 else None


def main() -> int:
    # Ctrl-C is the parent's to handle (it stops this process); a SIGINT sent to the whole group
    # must not end tracking with an error the parent would record against the file
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec = json.loads(sys.stdin.readline())
    from avdetect._process import die_with_parent

    die_with_parent(int(spec["parent"]))
    out = os.fdopen(os.dup(1), "wb")  # the messages' own descriptor on the pipe to the parent
    os.dup2(2, 1)  # anything else written to stdout (C code, a child process) goes to stderr
    sys.stdout = sys.stderr  # and so does anything printed by a library: never into the messages
    root = logging.getLogger()
    root.addHandler(_Forward(out))
    root.setLevel(logging.INFO)
    from avdetect.errors import AVDetectError
    from avdetect.faces import FaceTracker
    from avdetect.media import Media

    try:
        media = Media(_media_info_from_dict(spec["media"]), stall_timeout=spec["stall_timeout"], decode_threads=decode_threads())
        tracker = FaceTracker(backend=spec["backend"], crops=True)
        features_error = None
        kept = audio = None
        if spec.get("evidence"):
            from avdetect.forensics.analyze import AudioPrefetch
            from avdetect.forensics.features import FaceFeatureAccumulator

            kept = FaceFeatureAccumulator(tuple(media.working_size))
            if media.has_audio:  # the audio features and the VAD, on the core the tracking leaves idle
                audio = AudioPrefetch(media)
        for part in tracker.iter_windows(media, window=spec["window"]):
            arrays = {k: getattr(part, k) for k in _TRACK_ARRAYS}
            meta = {"start_frame": part.start_frame, "frame_size": list(part.frame_size), "backend": part.backend,
                    "seconds": part.seconds, "tracks": [asdict(t) for t in part.tracks],
                    "stills": {str(k): v for k, v in part.stills.items()}}
            if spec["face_features"] and features_error is None:
                from avdetect.forensics.features import window_features

                t0 = time.perf_counter()
                try:
                    feats = window_features(part)
                    arrays.update({f"f.{k}": v for k, v in feats.items()})
                    meta["forensic_seconds"] = time.perf_counter() - t0
                    if kept is not None:
                        kept.add_features(part.start_frame, feats)
                except Exception as err:  # reported to the parent, which falls back (see sources)
                    features_error = f"{type(err).__name__}: {err}"
            if features_error is not None:
                meta["forensic_error"] = features_error
            if not spec["keep_face"]:
                arrays["face"] = None
            _send(out, "window", meta, arrays)
        if kept is not None and features_error is None:
            _send(out, "evidence", _evidence(media, kept.result(), audio))
        _send(out, "done")
    except AVDetectError as err:
        _send(out, "error", {"type": type(err).__name__, "message": err.message, "path": err.path})
        return 1
    except BrokenPipeError:  # the parent stopped reading: nothing to tell it
        return 1
    except Exception as err:  # a bug: its type and message reach the parent's one-line error
        lines = str(err).strip().splitlines()
        _send(out, "error", {"type": type(err).__name__, "message": lines[-1] if lines else ""})
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
