"""Crop geometry: the crop rules (the crop sizes themselves live in :mod:`avdetect.vocab`).

Every crop avdetect produces or consumes is square RGB uint8:

* mouth crop: ``MOUTH_SIZE x MOUTH_SIZE`` pixels, centred on the mouth;
* face crop: ``FACE_SIZE x FACE_SIZE`` pixels, the smoothed face box with a margin.

Boxes are ``(x1, y1, x2, y2)`` float pixel coordinates in the decoded (working-size) frame.
"""
from __future__ import annotations

import cv2
import numpy as np

from avdetect.vocab import FACE_SIZE, MOUTH_SIZE  # noqa: F401 - re-exported (faces' public sizes)

#: Face crop = the face box enlarged by this factor around its centre (then made square).
FACE_MARGIN: float = 1.25
#: Mouth position inside a frontal face box (no landmarks): centre as fractions of the box,
#: side as a fraction of the box width. Measured on Haar boxes of real talking heads.
MOUTH_CENTER_X: float = 0.5
MOUTH_CENTER_Y: float = 0.78
MOUTH_SIDE: float = 0.55
#: With landmarks: mouth side = this factor x the mouth-corner-to-corner width.
MOUTH_LANDMARK_SCALE: float = 1.9


def square_box(cx: float, cy: float, side: float) -> np.ndarray:
    h = side / 2.0
    return np.array([cx - h, cy - h, cx + h, cy + h], dtype=np.float32)


def face_crop_box(face_box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = face_box
    side = max(x2 - x1, y2 - y1) * FACE_MARGIN
    return square_box((x1 + x2) / 2, (y1 + y2) / 2, side)


def mouth_box_from_face(face_box: np.ndarray) -> np.ndarray:
    """Mouth box from a frontal face box alone (the OpenCV backend has no landmarks)."""
    x1, y1, x2, y2 = face_box
    w, h = x2 - x1, y2 - y1
    return square_box(x1 + MOUTH_CENTER_X * w, y1 + MOUTH_CENTER_Y * h, MOUTH_SIDE * w)


def mouth_box_from_landmarks(points: np.ndarray) -> np.ndarray:
    """Mouth box from 68-point landmarks (iBUG layout: 48-67 are the mouth)."""
    mouth = np.asarray(points, dtype=np.float32)[48:68, :2]
    cx, cy = mouth.mean(axis=0)
    width = mouth[:, 0].max() - mouth[:, 0].min()
    return square_box(float(cx), float(cy), float(width) * MOUTH_LANDMARK_SCALE)


def _placement(box: np.ndarray, width: int, height: int, size: int, align: int = 1):
    """Integer source region of ``box`` inside the frame, and where it lands in a size x size crop.

    Returns ((x1, y1, x2, y2) in the frame, (u1, v1, u2, v2) in the crop) or None if the box
    does not overlap the frame. Parts of the box outside the frame stay black in the crop.
    With ``align=2`` all corners are even, so that 4:2:0 chroma regions are exactly half.
    """
    a = align
    bx1, by1 = int(np.floor(box[0] / a)) * a, int(np.floor(box[1] / a)) * a
    bx2, by2 = max(bx1 + a, int(np.ceil(box[2] / a)) * a), max(by1 + a, int(np.ceil(box[3] / a)) * a)
    x1, y1, x2, y2 = max(0, bx1), max(0, by1), min(width, bx2), min(height, by2)
    if x2 <= x1 or y2 <= y1:
        return None
    sx, sy = size / (bx2 - bx1), size / (by2 - by1)
    u1, v1 = int(round((x1 - bx1) * sx / a)) * a, int(round((y1 - by1) * sy / a)) * a
    u2, v2 = int(round((x2 - bx1) * sx / a)) * a, int(round((y2 - by1) * sy / a)) * a
    if u2 <= u1 or v2 <= v1:
        return None
    return (x1, y1, x2, y2), (u1, v1, u2, v2)


def _resize(region: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing of fine texture), bilinear when enlarging.

    A large reduction goes in two steps: a mild (< 2x) bilinear resize to the nearest integer
    multiple of the target, then an exact integer area reduction, which OpenCV runs on a fast
    path (about 2x faster than one area resize at an arbitrary ratio, within 0.3 grey levels)."""
    if w >= region.shape[1]:
        return cv2.resize(region, (w, h), interpolation=cv2.INTER_LINEAR)
    kx, ky = region.shape[1] // w, region.shape[0] // h
    if kx >= 2 and ky >= 2:
        region = cv2.resize(region, (w * kx, h * ky), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA)


def crop(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Crop ``box`` from an RGB ``frame`` and resize to ``size x size``; outside the frame is black."""
    out = np.zeros((size, size, 3), np.uint8)
    place = _placement(box, frame.shape[1], frame.shape[0], size)
    if place is not None:
        (x1, y1, x2, y2), (u1, v1, u2, v2) = place
        out[v1:v2, u1:u2] = _resize(frame[y1:y2, x1:x2], u2 - u1, v2 - v1)
    return out


def i420_planes(frame: np.ndarray, width: int, height: int):
    """Views of the Y (H, W), U and V (H/2, W/2) planes of an I420 frame of shape (H * 3 / 2, W)."""
    flat = frame.reshape(-1)
    ysz, csz = width * height, (width // 2) * (height // 2)
    return (
        flat[:ysz].reshape(height, width),
        flat[ysz : ysz + csz].reshape(height // 2, width // 2),
        flat[ysz + csz : ysz + 2 * csz].reshape(height // 2, width // 2),
    )


def crop_i420(frame: np.ndarray, width: int, height: int, box: np.ndarray, size: int) -> np.ndarray:
    """Crop ``box`` from an I420 frame into a ``size x size`` RGB crop (size even).

    Each plane's region is area-resized straight to the crop's resolution and only the small
    crop is colour-converted: correct anti-aliasing, and cost independent of the frame size.
    Outside the frame is black.
    """
    y_plane, u_plane, v_plane = i420_planes(frame, width, height)
    yc = np.full((size, size), 16, np.uint8)  # limited-range black
    uc = np.full((size // 2, size // 2), 128, np.uint8)
    vc = np.full((size // 2, size // 2), 128, np.uint8)
    place = _placement(box, width, height, size, align=2)
    if place is not None:
        (x1, y1, x2, y2), (u1, v1, u2, v2) = place  # all even: chroma is exactly half of each
        yc[v1:v2, u1:u2] = _resize(y_plane[y1:y2, x1:x2], u2 - u1, v2 - v1)
        for src, dst in ((u_plane, uc), (v_plane, vc)):
            dst[v1 // 2 : v2 // 2, u1 // 2 : u2 // 2] = _resize(src[y1 // 2 : y2 // 2, x1 // 2 : x2 // 2], (u2 - u1) // 2, (v2 - v1) // 2)
    i420 = np.concatenate([yc.ravel(), uc.ravel(), vc.ravel()]).reshape(size * 3 // 2, size)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
