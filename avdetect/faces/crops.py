"""Crop geometry: the crop rules (the crop sizes themselves live in :mod:`avdetect.vocab`).

Every crop avdetect produces or consumes is square RGB uint8:

* mouth crop: ``MOUTH_SIZE x MOUTH_SIZE`` pixels, centred on the mouth;
* face crop: ``FACE_SIZE x FACE_SIZE`` pixels, the smoothed face box with a margin.

Boxes are ``(x1, y1, x2, y2)`` float pixel coordinates in the decoded (working-size) frame.
With landmarks, both crops are also *aligned on the eyes*: rotated about their centre by the
head's roll (:func:`eye_roll`, the angle of the line through the eye centres), so the eyes lie
level and the lips horizontal in every crop whatever the tilt of the head. Without landmarks
(Haar boxes) the roll is 0 and crops are axis-aligned, as before.
"""
from __future__ import annotations

import cv2
import numpy as np

from avdetect.vocab import CROP_RULE, FACE_SIZE, MOUTH_SIZE  # noqa: F401 - re-exported (faces' public sizes, crop rule)

#: Face crop = the face box enlarged by this factor around its centre (then made square).
FACE_MARGIN: float = 1.25
#: Mouth position inside a frontal face box (no landmarks): centre as fractions of the box,
#: side as a fraction of the box width. Measured on Haar boxes of real talking heads.
MOUTH_CENTER_X: float = 0.5
MOUTH_CENTER_Y: float = 0.78
MOUTH_SIDE: float = 0.55
#: With landmarks but no eyes: mouth side = this factor x the mouth-corner-to-corner width.
MOUTH_LANDMARK_SCALE: float = 1.9
#: With landmarks: mouth side = this factor x the distance between the eye centres (rigid: it
#: does not change as the lips open, stretch or smile; 1.9 x the median mouth width, which is
#: 0.78 of the eye distance on 11 real clips).
MOUTH_EYE_SCALE: float = 1.5


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
    """Mouth box from 68-point landmarks (iBUG layout: 36-47 the eyes, 48-67 the mouth): centred
    on the midpoint of the mouth corners, its side :data:`MOUTH_EYE_SCALE` x the distance between
    the eye centres. Both stay put while the lips move (the centroid of the lips drops as the jaw
    opens and their width changes with every vowel), so the crop frames the mouth rigidly and its
    pixels carry the articulation, as the lip-sync evidence and the model need. Without eye
    points: centred on the lips, sized by their width."""
    p = np.asarray(points, dtype=np.float32)[:, :2]
    corners = p[[48, 54]]
    eyes = float(np.linalg.norm(p[36:42].mean(axis=0) - p[42:48].mean(axis=0))) if len(p) >= 48 else np.nan
    if np.isfinite(corners).all() and np.isfinite(eyes) and eyes > 0:
        cx, cy = corners.mean(axis=0)
        return square_box(float(cx), float(cy), MOUTH_EYE_SCALE * eyes)
    mouth = p[48:68][np.isfinite(p[48:68]).all(axis=1)]
    cx, cy = mouth.mean(axis=0)
    width = mouth[:, 0].max() - mouth[:, 0].min()
    return square_box(float(cx), float(cy), float(width) * MOUTH_LANDMARK_SCALE)


#: Rolls larger than this (radians, 45 degrees) are not a head tilt but a failed fit: not corrected.
MAX_ROLL: float = float(np.pi / 4)
#: Rolls smaller than this (radians, 0.5 degree) are not corrected (the crop is not resampled twice).
MIN_ROLL: float = float(np.deg2rad(0.5))


def eye_roll(points: np.ndarray) -> float:
    """Roll of the head from 68-point landmarks: the angle (radians) of the line from the centre
    of the eye on the image's left (36-41) to the other (42-47), positive when the eye on the
    right is lower (image y grows downwards; the face then looks turned clockwise). NaN without
    eye points or when the angle is over :data:`MAX_ROLL` (a fit that is not a face upright
    enough to trust)."""
    p = np.asarray(points, np.float64)[:, :2]
    if len(p) < 48:
        return float("nan")
    d = p[42:48].mean(axis=0) - p[36:42].mean(axis=0)
    if not np.isfinite(d).all() or not d.any():
        return float("nan")
    roll = float(np.arctan2(d[1], d[0]))
    return roll if abs(roll) <= MAX_ROLL else float("nan")


#: Per-frame face features measured from landmarks (:func:`landmark_features`), in this order.
FACE_FEATURES = ("lip_aperture", "mouth_width", "eye_openness")


def _ear(eye: np.ndarray) -> float:
    """Eye aspect ratio of 6 eye points (corner, two upper, corner, two lower; iBUG order)."""
    width = float(np.linalg.norm(eye[0] - eye[3]))
    return float((np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])) / (2.0 * width)) if width > 0 else np.nan


def landmark_features(points: np.ndarray) -> np.ndarray:
    """(3,) float32 :data:`FACE_FEATURES` from 68-point landmarks (iBUG layout; only the eyes
    36-47 and the mouth 48-67 are read): lip aperture = inner-lip opening / mouth width, mouth
    width = corner-to-corner / distance between the eye centres, eye openness = mean eye aspect
    ratio of the two eyes (about 0.3 open, under 0.15 closed). NaN where points are missing."""
    p = np.asarray(points, np.float64)[:, :2]
    width = float(np.linalg.norm(p[54] - p[48]))
    aperture = float(np.linalg.norm(p[66] - p[62])) / width if width > 0 else np.nan
    eyes = float(np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0)))
    mouth_w = width / eyes if eyes > 0 else np.nan
    ears = [e for e in (_ear(p[36:42]), _ear(p[42:48])) if np.isfinite(e)]
    ear = float(np.mean(ears)) if ears else np.nan
    return np.array([aperture, mouth_w, ear], np.float32)


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


#: JPEG quality of face stills and report thumbnails.
JPEG_QUALITY = 85
#: Longer side of a whole-frame still or thumbnail (a frame without a face).
FRAME_STILL_PX = 160


def small_frame(rgb: np.ndarray, longer: int = FRAME_STILL_PX) -> np.ndarray:
    """A whole RGB frame area-reduced to ``longer`` pixels on its longer side."""
    h, w = rgb.shape[:2]
    s = longer / max(h, w)
    return cv2.resize(rgb, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)


def jpeg_base64(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> str:
    """An RGB uint8 image as base64 JPEG text (what reports embed)."""
    import base64

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode an image of shape {rgb.shape}")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def i420_planes(frame: np.ndarray, width: int, height: int):
    """Views of the Y (H, W), U and V (H/2, W/2) planes of an I420 frame of shape (H * 3 / 2, W)."""
    flat = frame.reshape(-1)
    ysz, csz = width * height, (width // 2) * (height // 2)
    return (
        flat[:ysz].reshape(height, width),
        flat[ysz : ysz + csz].reshape(height // 2, width // 2),
        flat[ysz + csz : ysz + 2 * csz].reshape(height // 2, width // 2),
    )


def crop_i420(frame: np.ndarray, width: int, height: int, box: np.ndarray, size: int, roll: float = 0.0) -> np.ndarray:
    """Crop ``box`` from an I420 frame into a ``size x size`` RGB crop (size even).

    Each plane's region is area-resized straight to the crop's resolution and only the small
    crop is colour-converted: correct anti-aliasing, and cost independent of the frame size.
    Outside the frame is black. With ``roll`` (radians, :func:`eye_roll`) the crop is rotated
    about the box centre by that angle, so a head tilted by ``roll`` comes out level: the
    enclosing square of the rotated box is cropped as above at the crop's scale, then rotated
    (bilinear, at crop resolution) and its centre kept.
    """
    if not np.isfinite(roll) or abs(roll) < MIN_ROLL:
        return _crop_i420(frame, width, height, box, size)
    grow = abs(np.cos(roll)) + abs(np.sin(roll))  # the rotated square's enclosing square, relative
    big = int(np.ceil(size * grow / 2.0)) * 2
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    half = (box[2] - box[0]) / 2.0 * big / size
    wide = _crop_i420(frame, width, height, np.array([cx - half, cy - half, cx + half, cy + half], np.float32), big)
    # rotate by +roll (counter-clockwise on screen) about the centre, keep the central size x size
    c = (big - 1) / 2.0  # pixel centres at integer coordinates
    m = cv2.getRotationMatrix2D((c, c), float(np.rad2deg(roll)), 1.0)
    m[:, 2] -= (big - size) / 2.0
    return cv2.warpAffine(wide, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _crop_i420(frame: np.ndarray, width: int, height: int, box: np.ndarray, size: int) -> np.ndarray:
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
