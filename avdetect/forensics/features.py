"""Per-frame face features for the forensic analyses, computed in one streaming pass.

The face tracker yields windows of crops (:class:`avdetect.faces.FaceTrack`); each window is
reduced here to a few numbers per frame and a small mouth thumbnail, then dropped, so memory
grows by about 600 bytes per frame (a 1-hour video: ~55 MB), whatever the resolution.

Geometry inside the FACE_SIZE face crop (the face box enlarged by FACE_MARGIN = 1.25 and made
square, so the box spans 10 %..90 % of the crop): the *inner face* is 25 %..75 % across and
20 %..80 % down (cheeks, nose, mouth: where a swapped face is); the *ring* is the outer 8 % of
the crop (hair, neck, background: what a face swap leaves alone); the *seam band* is an
elliptical band at 85-100 % of the box's half-size, where a pasted face is blended in.

Eyes: OpenCV's Haar eye cascade (it finds *open* eyes) runs on the 16 %..60 % band of the face
crop reduced to EYE_CROP px, about 2 ms a frame. It runs on every other frame, and on both
neighbours of any frame where it finds no eye, so every closure of 2 frames or more is seen
with its exact extent at a little over half the cost; frames not looked at hold -1.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import cv2
import numpy as np

from avdetect.errors import FaceBackendError
from avdetect.faces.crops import FACE_SIZE

THUMB = 32  # mouth crops are reduced to THUMB x THUMB luma, then the lips region is kept
THUMB_ROWS = slice(8, 30)
THUMB_COLS = slice(4, 28)


def _masks() -> dict[str, np.ndarray]:
    n = FACE_SIZE
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    inner = (xx >= 0.25) & (xx < 0.75) & (yy >= 0.2) & (yy < 0.8)
    ring = (xx < 0.08) | (xx >= 0.92) | (yy < 0.08)  # not the bottom: that is the chin/neck seam
    # ellipse in units of the face box half-size (box = 0.1..0.9 of the crop: half-size 0.4)
    r = np.sqrt(((xx - 0.5) / 0.4) ** 2 + ((yy - 0.5) / 0.4) ** 2)
    seam = (r >= 0.85) & (r < 1.0)
    inside = r < 0.7
    return {"inner": inner, "ring": ring, "seam": seam, "inside": inside}


_MASKS = _masks()
LANDMARK_EYES_MIN = 0.7  # fraction of face frames with a measured eye openness to skip the eye cascade
EYE_CROP = 96  # face crop side for the eye cascade: eyes are then ~10-30 px
EYE_ROWS = slice(int(0.16 * EYE_CROP), int(0.60 * EYE_CROP))


@functools.lru_cache(maxsize=1)
def _eye_cascade() -> cv2.CascadeClassifier:
    path = os.path.join(cv2.data.haarcascades, "haarcascade_eye.xml")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FaceBackendError(f"OpenCV's eye cascade is missing ({path}); install opencv-python-headless<5")
    return cascade


def count_open_eyes(face_rgb: np.ndarray) -> int:
    """Open eyes the Haar eye cascade finds in a face crop (closed eyes are rarely found)."""
    g = cv2.resize(cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY), (EYE_CROP, EYE_CROP), interpolation=cv2.INTER_AREA)[EYE_ROWS]
    lo, hi = int(0.1 * EYE_CROP), int(0.32 * EYE_CROP)
    return len(_eye_cascade().detectMultiScale(g, 1.25, 3, minSize=(lo, lo), maxSize=(hi, hi)))


@dataclass
class FaceFeatures:
    """Per-frame face measurements (arrays have one row per grid frame)."""

    valid: np.ndarray  # (T,) bool
    boxes: np.ndarray  # (T, 4) float32 face boxes in working-frame pixels
    track_ids: np.ndarray  # (T,) int32
    frame_size: tuple[int, int]
    mouth: np.ndarray  # (T, 22, 24) uint8: lips region of the mouth crop at 32 x 32
    sharpness: np.ndarray  # (T,) log variance of the Laplacian over the inner face
    color: np.ndarray  # (T, 3) mean Y, Cr, Cb of the inner face
    ring_luma: np.ndarray  # (T,) mean luma of the ring around the face
    seam: np.ndarray  # (T,) gradient strength in the seam band / inside the face
    eyes: np.ndarray  # (T,) int8 open eyes found by the eye cascade; -1 where not looked at (or no face)
    shape: np.ndarray  # (T, 3) float32 landmark features (avdetect.faces.crops.FACE_FEATURES: lip aperture,
    #                    mouth width, eye openness), NaN where the face backend gave no landmarks

    def __len__(self) -> int:
        return len(self.valid)

    @property
    def coverage(self) -> float:
        return float(self.valid.mean()) if len(self.valid) else 0.0


def _stacked(crops: np.ndarray, fn, *args, **kwargs) -> np.ndarray:
    """``fn`` (an OpenCV per-pixel or 3x3 filter) over crops ``(k, h, w[, c])`` at once, as one
    image of the crops stacked vertically. Pixels of the top and bottom rows of each crop then
    see the neighbouring crop instead of a reflected border; no mask reads those rows."""
    k, h = crops.shape[:2]
    out = fn(crops.reshape(k * h, *crops.shape[2:]), *args, **kwargs)
    return out.reshape(k, h, *out.shape[1:])


def window_features(track) -> dict:
    """The forensic face features of one :class:`avdetect.faces.FaceTrack` window (with crops):
    a dict of per-frame arrays (the fields of :class:`FaceFeatures` but ``frame_size``)."""
    n = len(track)
    out = {
        "valid": track.valid.copy(), "boxes": track.boxes.astype(np.float32), "track_ids": track.track_ids.astype(np.int32),
        "mouth": np.zeros((n, THUMB_ROWS.stop - THUMB_ROWS.start, THUMB_COLS.stop - THUMB_COLS.start), np.uint8),
        "sharpness": np.zeros(n), "color": np.zeros((n, 3)), "ring_luma": np.zeros(n), "seam": np.zeros(n), "eyes": np.full(n, -1, np.int8),
        "shape": (np.asarray(track.features, np.float32) if getattr(track, "features", None) is not None
                  else np.full((n, 3), np.nan, np.float32)),
    }
    # with landmarks, eye openness is measured on every frame: the eye cascade is not needed
    landmark_eyes = bool(track.valid.any()) and float(np.isfinite(out["shape"][track.valid, 2]).mean()) >= LANDMARK_EYES_MIN
    if track.mouth is None or track.face is None:
        raise ValueError("the face track has no crops (track with crops=True)")
    m = _MASKS
    idx = np.flatnonzero(track.valid)
    if len(idx):
        grey = _stacked(track.mouth[idx], cv2.cvtColor, cv2.COLOR_RGB2GRAY)
        for k, i in enumerate(idx):  # (area reduction: one crop at a time, so no block straddles two)
            out["mouth"][i] = cv2.resize(grey[k], (THUMB, THUMB), interpolation=cv2.INTER_AREA)[THUMB_ROWS, THUMB_COLS]
        ycc = _stacked(track.face[idx], cv2.cvtColor, cv2.COLOR_RGB2YCrCb)  # (k, S, S, 3)
        y = ycc[..., 0].astype(np.float32)  # (k, S, S)
        lap = _stacked(y, cv2.Laplacian, cv2.CV_32F, ksize=3)
        out["sharpness"][idx] = np.log(lap[:, m["inner"]].var(axis=1) + 1.0)
        out["color"][idx] = ycc[:, m["inner"]].mean(axis=1)
        out["ring_luma"][idx] = y[:, m["ring"]].mean(axis=1)
        gx = _stacked(y, cv2.Sobel, cv2.CV_32F, 1, 0, ksize=3)
        gy = _stacked(y, cv2.Sobel, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.sqrt(gx * gx + gy * gy)
        out["seam"][idx] = mag[:, m["seam"]].mean(axis=1) / (mag[:, m["inside"]].mean(axis=1) + 1.0)
        if not landmark_eyes:
            for i in idx[(track.start_frame + idx) % 2 == 0]:
                out["eyes"][i] = min(count_open_eyes(track.face[i]), 4)
    # closures: look at both neighbours of every frame without an open eye (within the window;
    # a closure cut by a window edge is seen from both sides)
    for i in np.flatnonzero(out["eyes"] == 0):
        for j in (i - 1, i + 1):
            if 0 <= j < n and track.valid[j] and out["eyes"][j] < 0:
                out["eyes"][j] = min(count_open_eyes(track.face[j]), 4)
    return out


class FaceFeatureAccumulator:
    """Builds :class:`FaceFeatures` from face-track windows as they stream past, so that a caller
    that already tracks faces (``avdetect.detect``) hands each window here instead of the forensic
    analysis decoding and tracking the video a second time. Windows must arrive in time order and
    without gaps; each is reduced at once and can then be dropped."""

    def __init__(self, frame_size: tuple[int, int], start_frame: int = 0):
        self.frame_size = tuple(frame_size)
        self._parts: list[dict] = []
        self.n_frames = start_frame  # the next window must start here

    def add(self, track) -> None:
        """Reduce one :class:`avdetect.faces.FaceTrack` window (with crops) starting at frame ``n_frames``."""
        self.add_features(track.start_frame, window_features(track))

    def add_features(self, start_frame: int, features: dict) -> None:
        """Add one window's features already computed by :func:`window_features` (e.g. in the
        face worker process, :mod:`avdetect.faces.worker`)."""
        if start_frame != self.n_frames:
            raise ValueError(f"face-track window starts at frame {start_frame}, expected {self.n_frames}")
        self._parts.append(features)
        self.n_frames += len(features["valid"])

    def result(self) -> FaceFeatures:
        parts = self._parts or [window_features(_EmptyTrack())]
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return FaceFeatures(frame_size=self.frame_size, **cat)


def face_features(media=None, face_track=None, window: int = 250, backend: str = "auto") -> FaceFeatures:
    """Per-frame face features from ``face_track`` (a FaceTrack with crops) or, when None, by
    tracking faces in ``media`` window by window (streaming, bounded memory)."""
    if face_track is not None:
        acc = FaceFeatureAccumulator(face_track.frame_size, start_frame=face_track.start_frame)
        acc.add(face_track)
        return acc.result()
    if media is None:
        raise ValueError("give media or face_track")
    from avdetect.faces import FaceTracker

    acc = FaceFeatureAccumulator(tuple(media.working_size))
    for w in FaceTracker(backend=backend, crops=True).iter_windows(media, window=window):
        acc.add(w)
    return acc.result()


class _EmptyTrack:
    start_frame = 0
    valid = np.zeros(0, bool)
    boxes = np.zeros((0, 4), np.float32)
    track_ids = np.zeros(0, np.int32)
    mouth = np.zeros((0, 1, 1, 3), np.uint8)
    face = np.zeros((0, 1, 1, 3), np.uint8)

    def __len__(self) -> int:
        return 0
