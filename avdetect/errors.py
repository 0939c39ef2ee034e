"""Typed exceptions raised by avdetect.

Every error a user can cause with their input derives from :class:`AVDetectError`, so
that callers (and the command line) can catch one class and show ``str(err)``: a single
line that names the file and the problem.
"""
from __future__ import annotations

from pathlib import Path


class AVDetectError(Exception):
    """Base class of every error avdetect raises on purpose."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


# --- media -----------------------------------------------------------------------------
class MediaError(AVDetectError):
    """A problem with an input media file."""


class MediaNotFoundError(MediaError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class NotMediaError(MediaError):
    """The file is not an audio or video file that ffmpeg recognises (empty, text, ...)."""


class CorruptMediaError(MediaError):
    """The file is a media container but its data is broken or truncated."""


class NoStreamsError(MediaError):
    """The file has neither a decodable video stream nor a decodable audio stream."""


class UnsupportedStreamError(MediaError):
    """A stream is present but cannot be decoded (unknown codec, attached picture only, ...)."""


class MediaTooLargeError(MediaError):
    """The media exceeds a configured limit (duration, resolution)."""


class MediaTimeoutError(MediaError):
    """The decoder stopped producing data within the allowed time and was killed."""


# --- faces -----------------------------------------------------------------------------
class FaceBackendError(AVDetectError):
    """A face backend cannot be used (missing package, missing weights, unknown name)."""


class MissingWeightsError(FaceBackendError):
    """Weights that must be present locally are missing; nothing is downloaded."""


# --- models and checkpoints ------------------------------------------------------------
class CheckpointError(AVDetectError):
    """A checkpoint folder is missing files, has the wrong architecture or wrong keys."""


class ConfigError(AVDetectError):
    """A configuration value is invalid."""


# --- data / evaluation -----------------------------------------------------------------
class DataFormatError(AVDetectError):
    """A metadata, manifest or prediction file does not follow its documented format."""


# --- synth (issue 3) ---------------------------------------------------------------------
class SynthError(AVDetectError):
    """The synthetic benchmark generator could not render or write a clip."""


# --- model inputs (issue 4: models) ----------------------------------------------------
class ModelInputError(AVDetectError):
    """Tensors given to a model do not follow its input contract (shapes, dtypes, lengths)."""


# --- detect, reports and scans (issue 7: api, report, cli) -----------------------------
class CheckpointNotFoundError(CheckpointError):
    """The requested (or default) checkpoint folder is not there."""


class ReportError(AVDetectError):
    """A detection report (dict or JSON file) does not follow the documented schema."""


class ScanError(AVDetectError):
    """A corpus scan had to stop (e.g. a worker process died); what was written is kept."""


# --- the detection service (issue 16: serve) -------------------------------------------
class ServeError(AVDetectError):
    """The detection service cannot start or use its job database (in use, newer schema, ...)."""
