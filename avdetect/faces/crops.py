"""Crop geometry: the one place where the fixed crop sizes and the crop rules are recorded.

Every crop avdetect produces or consumes is square RGB uint8:

* mouth crop: ``MOUTH_SIZE x MOUTH_SIZE`` pixels, centred on the mouth;
* face crop: ``FACE_SIZE x FACE_SIZE`` pixels, the smoothed face box with a margin.

Boxes are ``(x1, y1, x2, y2)`` float pixel coordinates in the decoded (working-size) frame.
"""
from __future__ import annotations

import cv2
import numpy as np

MOUTH_SIZE: int = 96
FACE_SIZE: int = 128

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


def crop(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Crop ``box`` from ``frame`` and resize to ``size x size``; outside the frame is black.

    Uses one affine warp (no intermediate copies), so it costs the same for any frame size.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    sx = size / max(x2 - x1, 1e-3)
    sy = size / max(y2 - y1, 1e-3)
    m = np.array([[sx, 0.0, -x1 * sx], [0.0, sy, -y1 * sy]], dtype=np.float64)
    interp = cv2.INTER_AREA if sx < 1.0 else cv2.INTER_LINEAR
    return cv2.warpAffine(frame, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def i420_planes(frame: np.ndarray, width: int, height: int):
    """Views of the Y (H, W), U and V (H/2, W/2) planes of an I420 frame of shape (H * 3 / 2, W)."""
    flat = frame.reshape(-1)
    ysz, csz = width * height, (width // 2) * (height // 2)
    return (
        flat[:ysz].reshape(height, width),
        flat[ysz : ysz + csz].reshape(height // 2, width // 2),
        flat[ysz + csz : ysz + 2 * csz].reshape(height // 2, width // 2),
    )


def i420_region_to_rgb(frame: np.ndarray, width: int, height: int, box: np.ndarray) -> tuple[np.ndarray, int, int]:
    """RGB pixels of the part of an I420 frame that ``box`` covers (clipped, even-aligned).

    Returns (rgb (h, w, 3), x0, y0): the region and its top-left corner in frame pixels. Only
    this region is colour-converted, which is what makes cropping from I420 cheap.
    """
    x0 = max(0, int(np.floor(box[0])) & ~1)
    y0 = max(0, int(np.floor(box[1])) & ~1)
    x1 = min(width, (int(np.ceil(box[2])) + 1) & ~1)
    y1 = min(height, (int(np.ceil(box[3])) + 1) & ~1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((2, 2, 3), np.uint8), x0, y0
    y, u, v = i420_planes(frame, width, height)
    sub = np.concatenate([
        y[y0:y1, x0:x1].ravel(), u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].ravel(), v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].ravel(),
    ]).reshape((y1 - y0) * 3 // 2, x1 - x0)
    return cv2.cvtColor(sub, cv2.COLOR_YUV2RGB_I420), x0, y0


def crops_from_i420(frame: np.ndarray, width: int, height: int, boxes: list[np.ndarray], sizes: list[int]) -> list[np.ndarray]:
    """Several square crops from one I420 frame, converting only the region that holds them all."""
    allb = np.stack(boxes)
    union = np.array([allb[:, 0].min(), allb[:, 1].min(), allb[:, 2].max(), allb[:, 3].max()], dtype=np.float32)
    rgb, x0, y0 = i420_region_to_rgb(frame, width, height, union)
    shift = np.array([x0, y0, x0, y0], dtype=np.float32)
    return [crop(rgb, b - shift, s) for b, s in zip(boxes, sizes)]
