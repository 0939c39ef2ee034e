"""Face detector backends: the :class:`FaceBackend` protocol, its registry, and the built-ins.

A backend finds faces in one frame (luma or RGB, as it says), over the whole frame or only
around a known face; :class:`~avdetect.faces.FaceTracker` calls nothing else. Backends are
registered by name (:func:`register_face_backend`; the built-ins in :mod:`avdetect.faces`) and
built by :func:`get_backend`, which is what ``FaceTracker(backend="name")`` uses. A new backend
is one module with a class that follows :class:`FaceBackend`, and one
``register_face_backend("name", TheClass)`` line in ``avdetect/faces/__init__.py`` (or in the
caller's own code). The built-ins:

* ``mediapipe`` (the default, ``"auto"``, when its package is installed; :mod:`avdetect.faces.mediapipe_backend`):
  BlazeFace + the 468-point FaceMesh on the weights inside its wheel; landmarks on every frame.
* ``opencv`` (the fallback, offline, always there): the Haar cascades shipped with opencv-python-headless<5
  (frontal face; profile faces as a fallback inside a tracked region). It has no landmarks:
  the mouth box follows from the face box (see :mod:`avdetect.faces.crops`).
* ``face-alignment``: S3FD detection + 68 landmarks (precise mouth boxes). Used only when its
  weights are already in the local torch hub cache; nothing is ever downloaded.

Detection at any input resolution: a search over the whole frame runs on a copy scaled so that
the smallest face we look for (``min_face`` of the frame's shorter side) is just above the
cascade's window; a search around a known face runs on a crop scaled so that the face is about
``TRACK_FACE_PX`` pixels. So the cost and the reliability depend on the face's size relative to
the frame, not on the frame's resolution.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import cv2
import numpy as np

from avdetect.errors import FaceBackendError, MissingWeightsError

TRACK_FACE_PX = 72  # face size in pixels when re-detecting around a tracked face
HAAR_MIN_PX = 24  # the frontal cascade's window
SCALE_STEP = 1.1  # ratio between the face sizes a Haar search tries
# a quick search's step: about half the sizes, so about half the cost (on 640 x 360 frames of a
# real interview, for faces of 0.13 of the height and up: 17.6 ms a search against 32.9 ms at
# 1.1, with as many faces found). A face between two tried sizes is found a size up or down.
QUICK_SCALE_STEP = 1.2


@dataclass
class Detection:
    """One face a backend found."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 in frame pixels
    score: float  # 0..1
    landmarks: np.ndarray | None = None  # (68, 2) iBUG points when the backend gives them (then the mouth box follows them)


@runtime_checkable
class FaceBackend(Protocol):
    """What :class:`~avdetect.faces.FaceTracker` needs from a face detector.

    Attributes:
        name: recorded in every :class:`~avdetect.faces.FaceTrack` (``track.backend``).
        wants_rgb: True: ``frame`` is (H, W, 3) uint8 RGB; False: (H, W) uint8 luma (cheaper:
            the tracker passes the Y plane of the decoded I420 frame as it is).
    """

    name: str
    wants_rgb: bool

    def detect(self, frame: np.ndarray, min_face: float = 0.06, quick: bool = False) -> list[Detection]:
        """Faces anywhere in ``frame`` at least ``min_face`` of its shorter side (any order).
        ``quick``: a cheaper search that may miss a face a full one finds (the tracker asks for it
        when it only looks for new faces beside tracked ones); a backend without one ignores it."""
        ...

    def detect_near(self, frame: np.ndarray, box: np.ndarray, expand: float = 1.8) -> list[Detection]:
        """Faces around the known face ``box`` (4,) x1, y1, x2, y2 (a region ``expand`` x its
        size); boxes in the coordinates of the whole ``frame``. [] when none."""
        ...


def _gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def shrink(gray: np.ndarray, scale: float) -> np.ndarray:
    """Resize a luma image for *detection* by ``scale``: an integer stride first (free), then an
    area resize of at most 2x. Detectors need no more than that, and it is several times faster
    than one area resize of a large region. (Crops for the model never go through this.)"""
    if scale >= 1.0:
        return gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    step = max(1, int(0.5 / scale))
    if step > 1:
        gray = gray[::step, ::step]
        scale *= step
    h, w = gray.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


class OpenCVBackend:
    """Haar cascades (frontal + profile) with contrast equalisation and scale control."""

    name = "opencv"
    wants_rgb = False  # works on luma: the tracker passes the Y plane of I420 frames

    def __init__(self, min_neighbors: int = 5):
        self._base = Path(cv2.data.haarcascades)
        self.frontal = self._load(self._base / "haarcascade_frontalface_default.xml")
        self.min_neighbors = min_neighbors

    @functools.cached_property
    def frontal_alt(self) -> cv2.CascadeClassifier:  # fallbacks load on first use
        return self._load(self._base / "haarcascade_frontalface_alt2.xml")

    @functools.cached_property
    def profile(self) -> cv2.CascadeClassifier:
        return self._load(self._base / "haarcascade_profileface.xml")

    @staticmethod
    def _load(path: Path) -> cv2.CascadeClassifier:
        cascade = cv2.CascadeClassifier(str(path))
        if cascade.empty():
            raise FaceBackendError(
                f"the OpenCV Haar cascade {path.name} is missing from {path.parent}; "
                "install opencv-python-headless<5 (OpenCV 5 wheels ship no cascades)"
            )
        return cascade

    def _run(self, cascade, gray, min_px, max_px, neighbors, scale_factor=SCALE_STEP):
        boxes, levels, weights = cascade.detectMultiScale3(
            gray, scaleFactor=scale_factor, minNeighbors=neighbors, minSize=(min_px, min_px),
            maxSize=(max_px, max_px), outputRejectLevels=True,
        )
        out = []
        for (x, y, w, h), wt in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            score = float(1.0 / (1.0 + np.exp(-(wt - 1.0) * 1.5)))  # last-stage margin -> 0..1
            out.append(Detection(np.array([x, y, x + w, y + h], dtype=np.float32), score))
        return out

    def detect(self, frame: np.ndarray, min_face: float = 0.06, quick: bool = False) -> list[Detection]:
        """Search the whole frame for faces at least ``min_face`` of its shorter side; ``quick``:
        with the coarser scale step :data:`QUICK_SCALE_STEP`."""
        gray = _gray(frame)
        short = min(gray.shape[:2])
        scale = min(1.0, HAAR_MIN_PX / max(1.0, min_face * short))
        small = cv2.equalizeHist(shrink(gray, scale))
        scale = small.shape[0] / gray.shape[0]  # the exact scale after rounding
        dets = self._run(self.frontal, small, HAAR_MIN_PX, int(min(small.shape[:2])), self.min_neighbors,
                         scale_factor=QUICK_SCALE_STEP if quick else SCALE_STEP)
        for d in dets:
            d.box /= scale
        return dets

    def detect_near(self, frame: np.ndarray, box: np.ndarray, expand: float = 1.8) -> list[Detection]:
        """Search around a known face box (ROI ``expand`` x its size), at a face-relative scale.

        Tries the frontal cascade, then a second frontal cascade with fewer neighbours, then the
        profile cascade both ways round, and returns the first that finds something.
        """
        h_img, w_img = frame.shape[:2]
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half = side * expand / 2
        rx1, ry1 = int(max(0, cx - half)), int(max(0, cy - half))
        rx2, ry2 = int(min(w_img, cx + half)), int(min(h_img, cy + half))
        if rx2 - rx1 < 8 or ry2 - ry1 < 8:
            return []
        roi = _gray(frame[ry1:ry2, rx1:rx2])
        small = shrink(roi, TRACK_FACE_PX / max(side, 1.0))
        scale = small.shape[0] / roi.shape[0]
        roi = cv2.equalizeHist(small)
        lo, hi = int(TRACK_FACE_PX * 0.6), int(TRACK_FACE_PX * 1.6)
        attempts = [
            (lambda: self.frontal, False, self.min_neighbors),
            (lambda: self.frontal_alt, False, 2),
            (lambda: self.profile, False, 3),
            (lambda: self.profile, True, 3),
        ]
        for get_cascade, flipped, neighbors in attempts:
            cascade = get_cascade()
            img = cv2.flip(roi, 1) if flipped else roi
            dets = self._run(cascade, img, lo, min(hi, min(img.shape[:2])), neighbors)
            if dets:
                for d in dets:
                    if flipped:
                        d.box = np.array([img.shape[1] - d.box[2], d.box[1], img.shape[1] - d.box[0], d.box[3]], dtype=np.float32)
                    d.box = d.box / scale + np.array([rx1, ry1, rx1, ry1], dtype=np.float32)
                    if cascade is not self.frontal:
                        d.score *= 0.8  # fallbacks are less certain
                return dets
        return []


# ---------------------------------------------------------------------------------------
FA_DEFAULT_FILES = ("2DFAN4-cd938726ad.zip", "s3fd-619a316812.pth")


def torch_hub_checkpoints() -> Path:
    """The local torch hub cache folder where face-alignment keeps its weights."""
    hub = os.environ.get("TORCH_HOME")
    base = Path(hub) / "hub" if hub else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch" / "hub"
    try:
        import torch.hub

        base = Path(torch.hub.get_dir())
    except ImportError:  # torch is a dependency; this only keeps the path logic usable without it
        pass
    return base / "checkpoints"


def _fa_required_files() -> tuple[str, ...]:
    """File names face-alignment will ask the cache for (from its own URL tables if installed)."""
    try:
        from face_alignment import api as fa_api
        from face_alignment.detection.sfd import sfd_detector
    except ImportError:
        return FA_DEFAULT_FILES
    names = []
    urls = getattr(fa_api, "default_model_urls", {})
    if "2DFAN-4" in urls:
        names.append(urls["2DFAN-4"].rsplit("/", 1)[-1])
    sfd_urls = getattr(sfd_detector, "models_urls", {})
    if "s3fd" in sfd_urls:
        names.append(sfd_urls["s3fd"].rsplit("/", 1)[-1])
    return tuple(names) if len(names) == 2 else FA_DEFAULT_FILES


class FaceAlignmentBackend:
    """S3FD + FAN 68-point landmarks from the ``face-alignment`` package (weights must be local)."""

    name = "face-alignment"
    wants_rgb = True

    def __init__(self, device: str = "cpu"):
        folder = torch_hub_checkpoints()
        required = _fa_required_files()
        missing = [f for f in required if not (folder / f).is_file()]
        if missing:
            raise MissingWeightsError(
                f"face-alignment weights not found: {', '.join(missing)} missing from {folder} "
                "(copy them there from a machine with internet access; avdetect never downloads)"
            )
        try:
            import face_alignment
        except ImportError as err:
            raise FaceBackendError("the face-alignment backend needs the package: pip install 'avdetect[landmarks]'") from err
        lt = getattr(face_alignment.LandmarksType, "TWO_D", None) or getattr(face_alignment.LandmarksType, "_2D")
        self.fa = face_alignment.FaceAlignment(lt, device=device, face_detector="sfd", flip_input=False)

    def _landmark_dets(self, frame: np.ndarray, boxes=None) -> list[Detection]:
        preds, scores, boxes_out = self.fa.get_landmarks_from_image(frame, detected_faces=boxes, return_bboxes=True, return_landmark_score=True)
        dets = []
        for pts, sc, b in zip(preds or [], scores or [], boxes_out or []):
            pts = np.asarray(pts, dtype=np.float32)[:, :2]
            x1, y1 = pts.min(axis=0)
            x2, y2 = pts.max(axis=0)
            conf = float(np.clip(np.mean(sc), 0.0, 1.0)) if sc is not None else float(b[4] if len(b) > 4 else 1.0)
            dets.append(Detection(np.array([x1, y1, x2, y2], dtype=np.float32), conf, pts))
        return dets

    def detect(self, frame: np.ndarray, min_face: float = 0.06, quick: bool = False) -> list[Detection]:
        return self._landmark_dets(frame)

    def detect_near(self, frame: np.ndarray, box: np.ndarray, expand: float = 1.8) -> list[Detection]:
        x1, y1, x2, y2 = box
        return self._landmark_dets(frame, boxes=[np.array([x1, y1, x2, y2, 1.0], dtype=np.float32)])


# ---------------------------------------------------------------------------------------
_REGISTRY: dict[str, Callable[..., FaceBackend]] = {}
_AVAILABLE: dict[str, Callable[[], bool]] = {}  # backends whose package may be missing: name -> is it installed


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def register_face_backend(name: str, factory: Callable[..., FaceBackend], replace: bool = False,
                          available: Callable[[], bool] | None = None) -> None:
    """Make ``factory(**kwargs)`` (usually the backend class) available as ``name`` (case and
    ``_``/``-`` do not matter) to :func:`get_backend` and ``FaceTracker(backend=name)``.
    ``available()`` says whether its package is installed here (None: always)."""
    key = _key(name)
    if not key or not callable(factory):
        raise FaceBackendError(f"a face backend needs a name and a callable factory, got {name!r}, {factory!r}")
    if key in _REGISTRY and not replace and _REGISTRY[key] is not factory:
        raise FaceBackendError(f"a face backend named {key!r} is already registered (pass replace=True)")
    _REGISTRY[key] = factory
    if available is not None:
        _AVAILABLE[key] = available


def backend_available(name: str) -> bool:
    """Whether the backend registered as ``name`` can run here (registered, and its package installed)."""
    key = _key(name)
    return key in _REGISTRY and (key not in _AVAILABLE or bool(_AVAILABLE[key]()))


def unregister_face_backend(name: str) -> None:
    """Remove the backend registered as ``name``."""
    _AVAILABLE.pop(_key(name), None)
    if _REGISTRY.pop(_key(name), None) is None:
        raise FaceBackendError(f"no face backend named {name!r} is registered (registered: {', '.join(_REGISTRY)})")


def face_backend_names() -> tuple[str, ...]:
    """Names of the registered face backends, in registration order (``opencv`` first)."""
    return tuple(_REGISTRY)


AUTO = "auto"


def default_face_backend() -> str:
    """The backend ``"auto"`` means: ``mediapipe`` (landmarks, on the weights in its wheel) when its
    package is installed, else ``opencv`` (Haar cascades, always there)."""
    return "mediapipe" if backend_available("mediapipe") else "opencv"


def resolve_backend_name(name: str | None) -> str:
    """``name`` as registered (``"auto"`` or None: :func:`default_face_backend`)."""
    return default_face_backend() if name is None or _key(name) == AUTO else _key(name)


def get_backend(name: str = AUTO, **kwargs) -> FaceBackend:
    """Build the backend registered as ``name`` (keyword arguments go to its factory).

    Raises :class:`~avdetect.errors.FaceBackendError` for a name nobody registered (the message
    lists the registered ones) or a factory whose result is not a :class:`FaceBackend`;
    backends raise it (or :class:`~avdetect.errors.MissingWeightsError`) when they cannot run.
    """
    key = resolve_backend_name(name)
    if key not in _REGISTRY:
        raise FaceBackendError(f"unknown face backend {name!r}; registered: {', '.join(_REGISTRY) or 'none'} (or auto)")
    return as_backend(_REGISTRY[key](**kwargs))


def as_backend(backend) -> FaceBackend:
    """``backend`` if it follows :class:`FaceBackend`, else a :class:`~avdetect.errors.FaceBackendError`
    saying what it lacks."""
    if not isinstance(backend, FaceBackend):
        lacks = [m for m in ("name", "wants_rgb", "detect", "detect_near") if not hasattr(backend, m)]
        raise FaceBackendError(f"{type(backend).__name__} is not a face backend "
                               f"(it lacks {', '.join(lacks)}; see avdetect.faces.FaceBackend)")
    return backend
