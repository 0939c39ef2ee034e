"""The ``mediapipe`` face backend: BlazeFace detection + the 468-point FaceMesh, on the weights
that ship inside the mediapipe 0.10.21 wheel (Apache-2.0; nothing is downloaded).

* ``detect`` (a search over the whole frame) runs the short-range BlazeFace detector and, when
  it finds nothing, the full-range one; when that finds nothing either and small faces are
  asked for, the full-range detector on overlapping tiles (a face of 6% of the frame height at
  1080p; at most every :data:`TILE_EVERY` searches, so a video without faces stays cheap); then
  FaceMesh on each face found;
* ``detect_near`` (a known face) takes the face FaceMesh tracks in the whole frame (its video
  mode: landmarks of the previous frame seed the next, 3-5 ms a frame) nearest the known box,
  or, when that mode lost it, FaceMesh on a square region around the box.

Each detection carries 68 landmarks in the iBUG layout that the rest of the package reads
(:mod:`avdetect.faces.crops`): the eyes (36-47) and the mouth (48-67) come from the mesh points
at the same places; the jaw, brows and nose (0-35) are NaN (nothing reads them). The face box is
the box of the mesh, so it hugs the face from brow to chin; the mouth box follows the lips.

It is cheap enough to measure every frame (``cadence = (1, 1)``: no interpolation, no template
matching), so the per-frame face features (lip aperture, mouth width, eye openness) are real
measurements on every frame with a face.

mediapipe 0.10.21 declares ``numpy<2`` and ``opencv-contrib-python``; installed with
``--no-deps`` next to ``absl-py attrs flatbuffers 'protobuf>=4.25.3,<5'`` it imports and runs
with numpy 2 and opencv-python-headless (the README's set-up commands do that).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import time

import numpy as np

from avdetect.errors import FaceBackendError
from avdetect.faces.backends import Detection

log = logging.getLogger(__name__)

#: FaceMesh point for each iBUG-68 point from 36 on (eyes 36-47, outer lips 48-59, inner lips 60-67).
MESH_TO_IBUG = {
    36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144,  # the eye on the image's left
    42: 362, 43: 385, 44: 387, 45: 263, 46: 373, 47: 380,  # the eye on the image's right
    48: 61, 49: 40, 50: 37, 51: 0, 52: 267, 53: 270, 54: 291,  # outer lips, upper, left to right
    55: 321, 56: 314, 57: 17, 58: 84, 59: 91,  # outer lips, lower, right to left
    60: 78, 61: 81, 62: 13, 63: 311, 64: 308,  # inner lips, upper
    65: 402, 66: 14, 67: 178,  # inner lips, lower
}
_IBUG = np.array(sorted(MESH_TO_IBUG))
_MESH = np.array([MESH_TO_IBUG[k] for k in _IBUG])
NEAR_EXPAND = 1.6  # region around a known face that FaceMesh looks at (x its size)
MAX_FACES = 1  # faces the video-mode mesh follows at once: with more, mediapipe runs its detector on every
# frame while fewer are tracked (10.9 ms a frame instead of 6.9 on a 512-px talking head); other faces are
# found by the tracker's periodic whole-frame searches and measured by FaceMesh on a region around them
WHOLE_FRAME_MIN_FACE = 0.12  # smaller faces (fraction of the shorter side) are searched for in tiles too
TILE_FACES = 5  # tile side in smallest-face sizes
TILE_EVERY = 5  # a tiled search (costly) at most every this many searches that found nothing


def available() -> bool:
    """Whether the mediapipe package (with its face models) can be imported here."""
    import importlib.util

    return importlib.util.find_spec("mediapipe") is not None


@contextlib.contextmanager
def _quiet_native_stderr():
    """Mute file descriptor 2 for a moment: mediapipe's C++ graphs log a dozen harmless warnings
    when they start (absl logging, which Python's logging cannot reach); a user's terminal and a
    CLI's one-line errors stay clean. Python-level writes are kept and written after."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    buf = io.StringIO()
    try:
        os.dup2(devnull, 2)
        with contextlib.redirect_stderr(buf):
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        if buf.getvalue():
            sys.stderr.write(buf.getvalue())


def _import_mediapipe():
    try:
        os.environ.setdefault("GLOG_minloglevel", "2")
        with _quiet_native_stderr():
            import mediapipe as mp
        return mp
    except ImportError as err:
        raise FaceBackendError(
            "the mediapipe face backend needs mediapipe 0.10.21 (its wheel holds the face models): "
            "pip install --no-deps mediapipe==0.10.21 absl-py attrs flatbuffers 'protobuf>=4.25.3,<5'") from err


class MediaPipeBackend:
    """BlazeFace + FaceMesh (module docstring)."""

    name = "mediapipe"
    wants_rgb = True
    cadence = (1, 1)  # measure every frame: ~5-10 ms per frame on one core

    def __init__(self, min_confidence: float = 0.5):
        mp = _import_mediapipe()
        fd, fm = mp.solutions.face_detection, mp.solutions.face_mesh
        self.min_confidence = float(min_confidence)
        with _quiet_native_stderr():
            self._short = fd.FaceDetection(model_selection=0, min_detection_confidence=self.min_confidence)
            self._full = fd.FaceDetection(model_selection=1, min_detection_confidence=self.min_confidence)
            self._mesh = fm.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                     min_detection_confidence=self.min_confidence)
            self._video = fm.FaceMesh(static_image_mode=False, max_num_faces=MAX_FACES, refine_landmarks=False,
                                      min_detection_confidence=self.min_confidence, min_tracking_confidence=0.5)
            blank = np.zeros((64, 64, 3), np.uint8)  # the graphs' first run logs too
            for g in (self._short, self._full, self._mesh, self._video):
                g.process(blank)
            time.sleep(0.05)  # the graphs' worker threads log asynchronously
        self._calls, self._last_tiles = 0, -TILE_EVERY  # searches so far, and the last tiled one
        self._warm: set[int] = set()  # graphs that have fitted a face (their first fit logs a native warning)
        self._last_frame = None  # the frame the video-mode meshes below belong to
        self._last_video: list[Detection] = []

    def close(self) -> None:
        for g in (self._short, self._full, self._mesh, self._video):
            g.close()

    def _process(self, graph, image: np.ndarray):
        """``graph.process(image)``, with native stderr muted until the graph's first fitted face."""
        if id(graph) in self._warm:
            return graph.process(image)
        with _quiet_native_stderr():
            res = graph.process(image)
            time.sleep(0.01)  # its worker threads log asynchronously
        if res.multi_face_landmarks:
            self._warm.add(id(graph))
        return res

    @staticmethod
    def _detection(pts: np.ndarray) -> Detection:
        """A Detection from the 468 mesh points (frame pixels)."""
        ibug = np.full((68, 2), np.nan, np.float32)
        ibug[_IBUG] = pts[_MESH]
        (bx1, by1), (bx2, by2) = pts.min(axis=0), pts.max(axis=0)
        # FaceMesh reports no confidence, only whether a face was fitted: a fitted mesh counts 1.0
        return Detection(np.array([bx1, by1, bx2, by2], np.float32), 1.0, ibug)

    def _video_meshes(self, frame: np.ndarray) -> list[Detection]:
        """The faces video-mode FaceMesh tracks in ``frame`` (once per frame, however many tracks ask)."""
        if frame is not self._last_frame:
            h, w = frame.shape[:2]
            res = self._process(self._video, frame)
            self._last_video = [self._detection(np.array([(p.x * w, p.y * h) for p in f.landmark], np.float32))
                                for f in (res.multi_face_landmarks or [])]
            self._last_frame = frame
        return self._last_video

    # -- landmarks on a region -----------------------------------------------------------
    def _mesh_in(self, frame: np.ndarray, box: np.ndarray, expand: float) -> Detection | None:
        """FaceMesh on the square region ``expand`` x the size of ``box``; a Detection in frame pixels."""
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box)
        side = max(x2 - x1, y2 - y1) * expand
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        rx1, ry1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        rx2, ry2 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        if rx2 - rx1 < 16 or ry2 - ry1 < 16:
            return None
        roi = np.ascontiguousarray(frame[ry1:ry2, rx1:rx2])
        res = self._process(self._mesh, roi)
        if not res.multi_face_landmarks:
            return None
        lm = res.multi_face_landmarks[0].landmark
        rh, rw = roi.shape[:2]
        return self._detection(np.array([(p.x * rw + rx1, p.y * rh + ry1) for p in lm], np.float32))

    # -- FaceBackend ---------------------------------------------------------------------
    def _boxes(self, detector, image: np.ndarray, x0: int = 0, y0: int = 0) -> list[tuple[np.ndarray, float]]:
        """(box in frame pixels, score) of the faces ``detector`` finds in ``image`` (at ``x0, y0``)."""
        h, w = image.shape[:2]
        out = []
        for d in detector.process(image).detections or []:
            r = d.location_data.relative_bounding_box
            box = np.array([r.xmin * w + x0, r.ymin * h + y0, (r.xmin + r.width) * w + x0, (r.ymin + r.height) * h + y0],
                           np.float32)
            out.append((box, float(d.score[0]) if d.score else self.min_confidence))
        return out

    def _tiles(self, frame: np.ndarray, min_face: float) -> list[tuple[np.ndarray, float]]:
        """The full-range detector on overlapping tiles about ``TILE_FACES`` smallest faces wide, so
        that a face of ``min_face`` of the shorter side fills enough of the detector's input."""
        from avdetect.faces.tracking import iou

        h, w = frame.shape[:2]
        side = int(max(96, TILE_FACES * min_face * min(h, w)))
        if side >= min(h, w):
            return []
        step = max(1, (3 * side) // 4)
        found: list[tuple[np.ndarray, float]] = []
        for y in list(range(0, h - side, step)) + [h - side]:
            for x in list(range(0, w - side, step)) + [w - side]:
                for box, score in self._boxes(self._full, np.ascontiguousarray(frame[y:y + side, x:x + side]), x, y):
                    if all(iou(box, b) < 0.3 for b, _ in found):  # a face seen by two overlapping tiles counts once
                        found.append((box, score))
        return found

    def detect(self, frame: np.ndarray, min_face: float = 0.06, quick: bool = False) -> list[Detection]:
        h, w = frame.shape[:2]
        found = self._boxes(self._short, frame) or self._boxes(self._full, frame)
        self._calls += 1
        if not found and min_face < WHOLE_FRAME_MIN_FACE and self._calls - self._last_tiles >= TILE_EVERY:
            # small faces: the detectors see the whole frame at 128-192 px, too coarse below ~10% of it
            self._last_tiles = self._calls
            found = self._tiles(frame, min_face)
        out = []
        for box, score in found:
            if min(box[2] - box[0], box[3] - box[1]) < min_face * min(h, w):
                continue
            det = self._mesh_in(frame, box, NEAR_EXPAND)
            if det is None:  # a face the mesh could not fit: the detector's box, no landmarks
                out.append(Detection(box, score))
            else:
                det.score = score
                out.append(det)
        return out

    def detect_near(self, frame: np.ndarray, box: np.ndarray, expand: float = 1.8) -> list[Detection]:
        from avdetect.faces.tracking import iou

        tracked = [d for d in self._video_meshes(frame) if iou(d.box, np.asarray(box, np.float32)) > 0.3]
        if tracked:
            return [max(tracked, key=lambda d: iou(d.box, np.asarray(box, np.float32)))]
        det = self._mesh_in(frame, box, min(expand, NEAR_EXPAND))
        return [] if det is None else [det]
