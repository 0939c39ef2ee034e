"""Faces: detect, track and crop the main speaker's face and mouth in every frame.

    from avdetect.faces import track_faces
    track = track_faces(media)            # FaceTrack: boxes, valid, mouth and face crops
    track.coverage, track.explanation

Crop sizes are recorded once, in :mod:`avdetect.faces.crops` (``MOUTH_SIZE``, ``FACE_SIZE``).
Face detectors follow :class:`FaceBackend` and are registered by name below (a new backend: a
module with its class, and one line here); ``FaceTracker(backend="name")`` builds one.
"""
from avdetect.faces.backends import (
    FaceAlignmentBackend,
    default_face_backend,
    resolve_backend_name,
    FaceBackend,
    OpenCVBackend,
    backend_available,
    face_backend_names,
    get_backend,
    register_face_backend,
    unregister_face_backend,
)
from avdetect.faces.crops import FACE_SIZE, MOUTH_SIZE
from avdetect.faces.tracking import FaceTrack, FaceTracker, TrackSummary, track_faces

register_face_backend("opencv", OpenCVBackend)
register_face_backend("face-alignment", FaceAlignmentBackend)


def _mediapipe(**kwargs):
    from avdetect.faces.mediapipe_backend import MediaPipeBackend

    return MediaPipeBackend(**kwargs)


def _mediapipe_available() -> bool:
    from avdetect.faces import mediapipe_backend

    return mediapipe_backend.available()


register_face_backend("mediapipe", _mediapipe, available=_mediapipe_available)

__all__ = ["FACE_SIZE", "MOUTH_SIZE", "FaceBackend", "backend_available", "FaceTrack", "FaceTracker", "TrackSummary", "default_face_backend",
           "face_backend_names", "resolve_backend_name",
           "get_backend", "register_face_backend", "track_faces", "unregister_face_backend"]
