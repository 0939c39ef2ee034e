"""Faces: detect, track and crop the main speaker's face and mouth in every frame.

    from avdetect.faces import track_faces
    track = track_faces(media)            # FaceTrack: boxes, valid, mouth and face crops
    track.coverage, track.explanation

Crop sizes are recorded once, in :mod:`avdetect.faces.crops` (``MOUTH_SIZE``, ``FACE_SIZE``).
"""
from avdetect.faces.backends import BACKENDS, get_backend
from avdetect.faces.crops import FACE_SIZE, MOUTH_SIZE
from avdetect.faces.tracking import FaceTrack, FaceTracker, TrackSummary, track_faces

__all__ = ["BACKENDS", "FACE_SIZE", "MOUTH_SIZE", "FaceTrack", "FaceTracker", "TrackSummary", "get_backend", "track_faces"]
