"""Procedural talking heads: an identity, a static shaded face layer, per-frame mouth and blinks.

A face is drawn in *face space* (a square canvas of ``size`` pixels) with shading that a
Haar frontal-face cascade responds to: a lit ellipsoid (bright forehead, cheeks and nose
bridge, darker rim), dark eye sockets and brows, a dark mouth. The static part is rendered
once per clip; each frame only redraws the mouth (opening and width from the speech) and the
eyelids, then warps the layer by the head pose and composites it over the background.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Skin tones (RGB, 0-255), from light to dark. The two variants use interleaved subsets,
# so the hold-out variant shows tones the default variant never rendered.
_SKIN_TONES = np.array(
    [
        [255, 224, 196], [241, 194, 160], [234, 192, 134], [224, 172, 125], [210, 160, 120],
        [198, 134, 66], [180, 130, 95], [160, 110, 75], [141, 85, 36], [120, 80, 55],
        [100, 65, 40], [80, 52, 35], [245, 210, 180], [222, 184, 150], [190, 145, 110],
        [150, 100, 70], [110, 72, 48], [230, 200, 170],
    ],
    dtype=np.float32,
)
_HAIR = np.array(
    [[20, 15, 12], [45, 30, 20], [80, 55, 30], [120, 90, 55], [170, 140, 90],
     [60, 40, 35], [110, 40, 20], [140, 140, 140], [30, 30, 40], [200, 190, 170]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Identity:
    """Everything that makes one synthetic person look like themselves (sizes in face-space px)."""

    identity_id: str
    size: int
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: int  # 0 short, 1 long, 2 very short, 3 bun/high
    face_rx: float
    face_ry: float
    cx: float
    cy: float
    eye_dx: float
    eye_dy: float
    eye_rx: float
    eye_ry: float
    iris: tuple[float, float, float]
    brow_thick: int
    brow_lift: float
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip: tuple[float, float, float]
    beard: float  # 0 = none, else darkness of the stubble/beard on the jaw
    glasses: bool
    shirt: tuple[float, float, float]
    bg_a: tuple[float, float, float]
    bg_b: tuple[float, float, float]
    bg_style: int  # 0 vertical gradient, 1 blobs, 2 stripes, 3 room-like panels


def sample_identity(rng: np.random.Generator, size: int, identity_id: str, variant: str = "default") -> Identity:
    """Draw an identity. ``variant='holdout'`` draws from disjoint tone/style/shape ranges."""
    hold = variant == "holdout"
    tones = _SKIN_TONES[1::2] if hold else _SKIN_TONES[0::2]
    skin = tones[rng.integers(len(tones))] * rng.uniform(0.93, 1.05, 3)
    hairs = _HAIR[1::2] if hold else _HAIR[0::2]
    hair = hairs[rng.integers(len(hairs))] * rng.uniform(0.9, 1.1, 3)
    # hair much brighter than a dark face breaks the face/surround contrast the detector needs
    hair = hair * min(1.0, (float(np.mean(skin)) * 1.15 + 20.0) / max(1.0, float(np.mean(hair))))
    s = size / 256.0
    if hold:  # wider/rounder or narrower faces than the default range
        rx = rng.choice([rng.uniform(50, 52), rng.uniform(62, 64)]) * s
    else:
        rx = rng.uniform(52, 62) * s
    ry = rx * rng.uniform(1.2, 1.38)
    lip = np.clip(np.array(skin) * np.array([0.78, 0.52, 0.55]) + rng.uniform(-10, 10, 3), 0, 255)
    bg = rng.uniform(30, 230, (2, 3))
    return Identity(
        identity_id=identity_id,
        size=size,
        skin=tuple(float(v) for v in np.clip(skin, 0, 255)),
        hair=tuple(float(v) for v in np.clip(hair, 0, 255)),
        hair_style=int(rng.integers(0, 4)),
        face_rx=float(rx),
        face_ry=float(ry),
        cx=float(size / 2 + rng.uniform(-8, 8) * s),
        cy=float(size * 0.47 + rng.uniform(-6, 6) * s),
        eye_dx=float(rx * rng.uniform(0.36, 0.44)),
        eye_dy=float(-ry * rng.uniform(0.10, 0.18)),
        eye_rx=float(rx * rng.uniform(0.17, 0.22)),
        eye_ry=float(rx * rng.uniform(0.075, 0.1)),
        iris=tuple(float(v) for v in rng.choice([[60, 40, 25], [40, 70, 110], [70, 95, 60], [30, 25, 20]])),
        brow_thick=int(max(2, round(rng.uniform(3, 6) * s))),
        brow_lift=float(rx * rng.uniform(0.2, 0.3)),
        nose_len=float(ry * rng.uniform(0.32, 0.42)),
        nose_w=float(rx * rng.uniform(0.16, 0.24)),
        mouth_y=float(ry * rng.uniform(0.50, 0.58)),
        mouth_w=float(rx * rng.uniform(0.32, 0.42)),
        lip=tuple(float(v) for v in lip),
        beard=float(rng.uniform(0.55, 0.8)) if (hold and rng.random() < 0.4) else 0.0,
        glasses=bool(hold and rng.random() < 0.35),
        shirt=tuple(float(v) for v in rng.uniform(20, 230, 3)),
        bg_a=tuple(float(v) for v in bg[0]),
        bg_b=tuple(float(v) for v in bg[1]),
        bg_style=int(rng.integers(0, 4)) if not hold else int(rng.choice([1, 2, 3, 3])),
    )


def _gauss(xx, yy, x0, y0, sx, sy):
    return np.exp(-0.5 * (((xx - x0) / sx) ** 2 + ((yy - y0) / sy) ** 2))


def render_background(ident: Identity, rng: np.random.Generator) -> np.ndarray:
    """Static background (H, W, 3) float32 0-255."""
    n = ident.size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    a, b = np.array(ident.bg_a, np.float32), np.array(ident.bg_b, np.float32)
    if ident.bg_style == 0:
        t = yy[..., None]
    elif ident.bg_style == 1:
        t = np.zeros((n, n), np.float32)
        for _ in range(6):
            x0, y0, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
            t += rng.uniform(0.3, 1.0) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * r * r))
        t = np.clip(t, 0, 1)[..., None]
    elif ident.bg_style == 2:
        f, ph = rng.uniform(3, 9), rng.uniform(0, 6.3)
        t = (0.5 + 0.5 * np.sin(2 * np.pi * f * (xx * rng.uniform(0.5, 1) + yy * rng.uniform(-0.4, 0.4)) + ph))[..., None]
    else:
        t = np.zeros((n, n), np.float32)
        for _ in range(4):
            x0, x1 = sorted(rng.uniform(0, 1, 2))
            y0, y1 = sorted(rng.uniform(0, 1, 2))
            t[(xx > x0) & (xx < x1) & (yy > y0) & (yy < y1)] += rng.uniform(0.2, 0.6)
        t = np.clip(t, 0, 1)[..., None]
    bg = a * (1 - t) + b * t
    return cv2.GaussianBlur(bg.astype(np.float32), (0, 0), 1.5)


class FaceRenderer:
    """Renders frames of one identity. Build once per clip; call :meth:`render` per frame."""

    def __init__(self, ident: Identity, rng: np.random.Generator, light_dir: tuple[float, float] = (0.0, 0.0)):
        self.ident = ident
        n = ident.size
        self.n = n
        self.background = render_background(ident, rng)
        self.layer, self.alpha = self._render_static(light_dir)
        # mouth ROI in face space (x0, y0, x1, y1), generous enough for the widest opening
        i = ident
        mx, my = i.cx, i.cy + i.mouth_y
        hw, hh = i.mouth_w * 1.45, i.face_ry * 0.26
        self.mouth_box = (int(mx - hw), int(my - hh * 0.7), int(mx + hw + 1), int(my + hh * 1.1 + 1))

    # ---- static layer -------------------------------------------------------------------
    def _render_static(self, light_dir) -> tuple[np.ndarray, np.ndarray]:
        i, n = self.ident, self.n
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        skin = np.array(i.skin, np.float32)
        layer = np.zeros((n, n, 3), np.float32)
        alpha = np.zeros((n, n), np.float32)

        # neck and shoulders
        neck_w = i.face_rx * 0.55
        neck = (np.abs(xx - i.cx) < neck_w) & (yy > i.cy) & (yy < i.cy + i.face_ry * 1.6)
        layer[neck] = skin * 0.72
        alpha[neck] = 1
        sh = ((xx - i.cx) / (i.face_rx * 2.1)) ** 2 + ((yy - (i.cy + i.face_ry * 2.15)) / (i.face_ry * 0.95)) ** 2 < 1
        layer[sh] = np.array(i.shirt, np.float32)
        alpha[sh] = 1

        # hair behind the head
        hair = np.array(i.hair, np.float32)
        if i.hair_style == 1:  # long: a wide dark mass down to the shoulders
            m = ((xx - i.cx) / (i.face_rx * 1.35)) ** 2 + ((yy - (i.cy + i.face_ry * 0.15)) / (i.face_ry * 1.3)) ** 2 < 1
        elif i.hair_style == 3:
            m = ((xx - i.cx) / (i.face_rx * 1.12)) ** 2 + ((yy - (i.cy - i.face_ry * 0.25)) / (i.face_ry * 1.0)) ** 2 < 1
            m |= ((xx - i.cx) / (i.face_rx * 0.5)) ** 2 + ((yy - (i.cy - i.face_ry * 1.2)) / (i.face_ry * 0.3)) ** 2 < 1
        else:
            grow = 1.1 if i.hair_style == 0 else 1.04
            m = ((xx - i.cx) / (i.face_rx * grow)) ** 2 + ((yy - (i.cy - i.face_ry * 0.12)) / (i.face_ry * grow)) ** 2 < 1
            m &= yy < i.cy + i.face_ry * 0.1
        layer[m] = hair
        alpha[m] = 1

        # the face: a lit ellipsoid
        u = (xx - i.cx) / i.face_rx
        v = (yy - i.cy) / i.face_ry
        r2 = u * u + v * v
        face = r2 < 1
        nz = np.sqrt(np.clip(1 - r2, 0, 1))
        lx, ly = light_dir
        lz = np.sqrt(max(1e-3, 1 - lx * lx - ly * ly))
        diffuse = np.clip(u * lx + v * ly + nz * lz, 0, 1)
        shade = 0.45 + 0.6 * diffuse
        # features as soft multiplicative shading (what the cascade looks at)
        ex, ey = i.eye_dx, i.cy + i.eye_dy
        for sgn in (-1, 1):
            shade *= 1 - 0.5 * _gauss(xx, yy, i.cx + sgn * ex, ey - i.eye_ry * 0.8, i.eye_rx * 1.4, i.eye_ry * 2.8)
            shade *= 1 + 0.08 * _gauss(xx, yy, i.cx + sgn * i.face_rx * 0.45, i.cy + i.face_ry * 0.25, i.face_rx * 0.2, i.face_ry * 0.14)
        shade *= 1 + 0.14 * _gauss(xx, yy, i.cx, ey + i.nose_len * 0.3, i.nose_w * 0.35, i.nose_len * 0.65)  # bridge
        shade *= 1 + 0.08 * _gauss(xx, yy, i.cx, i.cy - i.face_ry * 0.55, i.face_rx * 0.5, i.face_ry * 0.2)  # forehead
        for sgn in (-1, 1):  # nose side shadows
            shade *= 1 - 0.12 * _gauss(xx, yy, i.cx + sgn * i.nose_w * 0.7, ey + i.nose_len * 0.6, i.nose_w * 0.25, i.nose_len * 0.4)
        ny = ey + i.nose_len
        shade *= 1 - 0.25 * _gauss(xx, yy, i.cx, ny + i.face_ry * 0.05, i.nose_w * 0.9, i.face_ry * 0.04)  # under-nose
        shade *= 1 - 0.15 * _gauss(xx, yy, i.cx, i.cy + i.mouth_y + i.face_ry * 0.2, i.mouth_w * 0.7, i.face_ry * 0.05)  # chin dimple
        face_rgb = skin[None, None, :] * shade[..., None]
        # specular highlights (additive, so dark skin keeps the bright-forehead/bridge pattern)
        spec = 0.8 * _gauss(xx, yy, i.cx, ey + i.nose_len * 0.45, i.nose_w * 0.3, i.nose_len * 0.45)
        spec += 0.6 * _gauss(xx, yy, i.cx, i.cy - i.face_ry * 0.45, i.face_rx * 0.35, i.face_ry * 0.15)
        for sgn in (-1, 1):
            spec += 0.4 * _gauss(xx, yy, i.cx + sgn * i.face_rx * 0.5, i.cy + i.face_ry * 0.12, i.face_rx * 0.15, i.face_ry * 0.1)
        face_rgb += (spec * 70.0 * (1.0 - float(np.mean(skin)) / 300.0))[..., None] * np.array([1.0, 0.95, 0.9], np.float32)
        if i.beard > 0:
            b = face & (v > 0.25) & (r2 > 0.0)
            w = np.clip((v - 0.25) * 3, 0, 1) * i.beard
            beard = np.minimum(np.array(i.hair, np.float32), skin * 0.45)
            face_rgb[b] = face_rgb[b] * (1 - w[b, None]) + beard * w[b, None]
        layer[face] = face_rgb[face]
        alpha[face] = 1
        # fringe of hair over the forehead
        if i.hair_style in (0, 1, 3):
            fr = face & (v < -0.74 + 0.06 * np.cos(u * 6.0))
            layer[fr] = hair * (0.9 + 0.1 * diffuse[fr, None])

        img = np.clip(layer, 0, 255).astype(np.float32)
        # eyes: sclera, iris, pupil, lash line
        for sgn in (-1, 1):
            c = (int(round(i.cx + sgn * ex)), int(round(ey)))
            ax = (int(round(i.eye_rx)), int(round(i.eye_ry)))
            sclera = tuple(0.4 * float(v) + 0.6 * w for v, w in zip(i.skin, (215, 210, 205)))
            cv2.ellipse(img, c, ax, 0, 0, 360, sclera, -1, cv2.LINE_AA)
            cv2.circle(img, c, max(2, int(round(i.eye_ry * 0.95))), i.iris, -1, cv2.LINE_AA)
            cv2.circle(img, c, max(1, int(round(i.eye_ry * 0.45))), (10, 10, 10), -1, cv2.LINE_AA)
            cv2.ellipse(img, c, ax, 0, 180, 360, (30, 20, 20), max(1, i.brow_thick // 2), cv2.LINE_AA)
            # brow
            bc = (int(round(i.cx + sgn * ex * 1.02)), int(round(ey - i.brow_lift)))
            brow = tuple(min(float(h) * 0.7, float(k) * 0.35) for h, k in zip(i.hair, i.skin))
            cv2.ellipse(img, bc, (int(i.eye_rx * 1.35), int(i.eye_ry * 1.2)), 0, 200, 340, brow, i.brow_thick, cv2.LINE_AA)
        # nostrils
        for sgn in (-1, 1):
            cv2.ellipse(img, (int(i.cx + sgn * i.nose_w * 0.45), int(ny)), (max(1, int(i.nose_w * 0.22)), max(1, int(i.nose_w * 0.12))),
                        0, 0, 360, tuple(float(v) * 0.45 for v in i.skin), -1, cv2.LINE_AA)
        if i.glasses:
            for sgn in (-1, 1):
                c = (int(round(i.cx + sgn * ex)), int(round(ey)))
                cv2.ellipse(img, c, (int(i.eye_rx * 1.5), int(i.eye_rx * 1.05)), 0, 0, 360, (25, 25, 25), 1, cv2.LINE_AA)
            cv2.line(img, (int(i.cx - ex + i.eye_rx * 1.5), int(ey)), (int(i.cx + ex - i.eye_rx * 1.5), int(ey)), (25, 25, 25), 1, cv2.LINE_AA)
        img = cv2.GaussianBlur(img, (0, 0), 0.8)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)
        return img, alpha

    # ---- per frame ----------------------------------------------------------------------
    def draw_mouth(self, face: np.ndarray, opening: float, width: float) -> None:
        """Draw the mouth in place on a face-space layer. ``opening`` in [0, 1], ``width`` ~1."""
        i = self.ident
        x0, y0, x1, y1 = self.mouth_box
        roi = face[y0:y1, x0:x1]
        mx, my = i.cx - x0, i.cy + i.mouth_y - y0
        mw = i.mouth_w * width
        gap = opening * i.face_ry * 0.22
        lip_t = max(1.5, i.face_ry * 0.035)
        c = (int(round(mx * 4)), int(round(my * 4)))  # 2 bits of sub-pixel precision
        sh = 2
        lip = i.lip
        cv2.ellipse(roi, c, (int(mw * 4), int((gap * 0.5 + lip_t * 1.6) * 4)), 0, 0, 360, lip, -1, cv2.LINE_AA, sh)
        inner = (int(mw * 0.82 * 4), int(max(0.6, gap * 0.5) * 4))
        cv2.ellipse(roi, c, inner, 0, 0, 360, (45, 18, 22), -1, cv2.LINE_AA, sh)
        if gap > 2.0:
            tc = (c[0], int(round((my - gap * 0.5 + 1.0) * 4)))
            cv2.ellipse(roi, tc, (int(mw * 0.6 * 4), int(min(gap * 0.22, 4.0) * 4)), 0, 0, 180, (215, 210, 200), -1, cv2.LINE_AA, sh)
        roi[:] = cv2.GaussianBlur(roi, (3, 3), 0.7)

    def draw_eyelids(self, face: np.ndarray, closure: float) -> None:
        """Close both eyes by ``closure`` in [0, 1] (skin-coloured lids from the top)."""
        if closure <= 0.02:
            return
        i = self.ident
        ey = i.cy + i.eye_dy
        for sgn in (-1, 1):
            cx = i.cx + sgn * i.eye_dx
            x0, x1 = int(cx - i.eye_rx - 2), int(cx + i.eye_rx + 3)
            top = int(ey - i.eye_ry - 2)
            bot = int(round(ey - i.eye_ry + closure * 2 * i.eye_ry + 1))
            patch = face[top:bot, x0:x1]
            patch[:] = np.array(i.skin, np.float32) * 0.62
            cv2.line(face, (x0 + 2, bot), (x1 - 2, bot), (35, 25, 25), 1, cv2.LINE_AA)

    def face_layer(self, opening: float, width: float, closure: float) -> np.ndarray:
        """The face-space layer for one frame (before pose, lighting and noise)."""
        face = self.layer.copy()
        self.draw_mouth(face, opening, width)
        self.draw_eyelids(face, closure)
        return face

    def composite(self, face: np.ndarray, pose: tuple[float, float, float, float], gain: float) -> np.ndarray:
        """Warp the face layer by ``pose`` = (dx, dy, angle_deg, scale) and put it over the background."""
        i = self.ident
        dx, dy, ang, sc = pose
        m = cv2.getRotationMatrix2D((i.cx, i.cy + i.face_ry * 0.9), ang, sc)
        m[0, 2] += dx
        m[1, 2] += dy
        n = self.n
        rgba = np.dstack([face, self.alpha])
        w = cv2.warpAffine(rgba, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = w[..., 3:4]
        out = w[..., :3] - self.background
        out *= a
        out += self.background
        if gain != 1.0:
            out *= gain
        return out
