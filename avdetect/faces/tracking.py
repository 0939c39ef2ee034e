"""Face and mouth tracks: detect every k frames, track between, pick the main speaker, crop.

One streaming pass over the decoded frames (memory bounded: at most ``track_every`` frames are
held besides the crops of the current output window):

1. **Keyframes** (every ``track_every`` frames, and the last frame) measure each live track:
   by the detector near its last box, at a face-relative scale (cheap at any resolution), every
   ``detect_every`` frames and whenever the track is unconfirmed or its match weakens; in between
   by normalised template matching of the face patch captured at the last detection (far cheaper
   than a detector, and it cannot drift: the template always comes from a detection). The whole
   frame is searched for new faces when nothing is tracked, and while faces are tracked every
   ``search_every`` frames for faces at least :data:`TRACKED_SEARCH_SHARE` of the biggest one,
   by the backend's quick search (``FaceBackend.detect(..., quick=True)``: for the Haar
   cascades a coarser scale step, which halves its cost; a face it misses is looked for again
   ``search_every`` frames later).
   With nothing tracked the search goes coarse to fine: faces of at least
   :data:`COARSE_MIN_FACE` of the frame on every keyframe (cheap), smaller ones only when none
   is found and at most every ``search_every`` frames, as while tracking (a whole-frame search
   at the finest scale costs 0.05-0.2 s on a 640 x 360 frame: on every keyframe of a stretch
   without faces it made tracking slower than real time).
2. **Association**: a detection continues the track whose box it overlaps most (IoU >= 0.2, or
   centre within half a face); a search detection that continues no track starts a new one. A
   track missed on ``max_misses`` keyframes in a row ends.
3. **Smoothing**: a track's keyframe box is an exponential blend of the new detection and its
   previous box (reset on a large jump, e.g. a cut); frames between keyframes get boxes
   linearly interpolated between the two keyframe boxes, or held from the one side that
   detected the face.
4. **Main speaker**: every track accumulates a score = sum over the keyframes it is seen on of
   confidence x face height / frame height, i.e. *persistence x size*. In each frame the present
   track with the highest score so far is used; ``FaceTrack.explanation`` says which track won
   and by how much.
5. **Crops** of the chosen face per frame: ``mouth`` (MOUTH_SIZE^2) and ``face`` (FACE_SIZE^2),
   levelled by the head roll measured on the eyes where the backend gives landmarks
   (:func:`~avdetect.faces.crops.eye_roll`, smoothed and interpolated like the boxes), and, from backends that give landmarks, the per-frame face features
   (:data:`~avdetect.faces.crops.FACE_FEATURES`: lip aperture, mouth width, eye openness; NaN
   on frames not measured by a detection, linearly interpolated between two that were).

A backend may say how often it wants to run (``cadence = (track_every, detect_every)``): a
landmark backend cheap enough to run on every frame measures every frame.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np

from avdetect.faces.backends import Detection, FaceBackend, as_backend, get_backend, shrink
from avdetect.faces.crops import (
    FACE_FEATURES,
    FACE_SIZE,
    MOUTH_SIZE,
    crop_i420,
    eye_roll,
    face_crop_box,
    i420_planes,
    jpeg_base64,
    landmark_features,
    mouth_box_from_face,
    mouth_box_from_landmarks,
    small_frame,
)

_NO_FEATURES = np.full(len(FACE_FEATURES), np.nan, np.float32)
TEMPLATE_PX = 32  # face template size for matching between detections
MATCH_MIN = 0.6  # weakest normalised correlation accepted as the same face
COARSE_MIN_FACE = 0.25  # first pass of a search with nothing tracked (fraction of the shorter side)
# while faces are tracked, a whole-frame search looks only for faces at least this share of the
# biggest tracked one's height: a smaller one has under a sixth of its area, and over the frames
# both are on screen its persistence x size score stays under 0.4 of that face's (the domain
# check counts a face as comparable from 0.5). A search's cost grows with the smallest face
# sought: on a 2-minute 720p interview the searches while tracking took 5.1 s at a share of 0.25
# and 2.3 s at 0.4 (of ~9 s of tracking). With nothing tracked the search goes down to min_face.
TRACKED_SEARCH_SHARE = 0.4
STILL_EVERY = 25  # frames between stills (FaceTrack.stills): one a second, 5-12 kB of base64 each


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    side = max(a[2] - a[0], b[2] - b[0])
    dc = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
    return iou(a, b) >= 0.2 or dc < 0.5 * side


@dataclass
class TrackSummary:
    """One face track over the video, for explaining the main-speaker choice."""

    track_id: int
    first_frame: int
    last_frame: int
    detections: int  # keyframes on which the detector found the face
    keyframes: int  # keyframes on which the face was seen (detected or tracked)
    mean_height: float  # mean face height / frame height
    score: float  # persistence x size

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Track:
    track_id: int
    first_frame: int
    last_key: int = -1
    face_box: np.ndarray | None = None  # smoothed, at last_key
    mouth_box: np.ndarray | None = None
    roll: float = 0.0  # head roll (radians, eye line; 0 without landmarks), smoothed like the boxes
    conf: float = 0.0  # confidence at the last measurement
    misses: int = 0
    detections: int = 0  # keyframes measured by the detector (2 confirm the track)
    seen: int = 0  # keyframes on which the track was measured (detector or template)
    last_detect: int = -1
    det_conf: float = 0.0  # confidence of the last detection
    template: np.ndarray | None = None  # luma patch of the face at the last detection
    height_sum: float = 0.0
    score: float = 0.0
    alive: bool = True
    # keyframe states: frame -> (face_box, mouth_box, conf, features (3,), roll); the last two are enough
    keys: dict = field(default_factory=dict)

    def summary(self) -> TrackSummary:
        return TrackSummary(
            self.track_id, self.first_frame, self.last_key, self.detections, self.seen,
            self.height_sum / max(1, self.seen), self.score,
        )


@dataclass
class _Pass:
    """The state of one tracking pass between keyframes."""

    tracks: list[_Track] = field(default_factory=list)
    next_id: int = 0  # the id of the next new track
    last_fine: int | None = None  # frame of the last search for small faces with nothing tracked


@dataclass
class FaceTrack:
    """Per-frame face and mouth track of the main speaker over frames
    ``[start_frame, start_frame + n)`` (all arrays have n rows)."""

    start_frame: int
    boxes: np.ndarray  # (n, 4) float32 face boxes x1, y1, x2, y2 (zeros where invalid)
    mouth_boxes: np.ndarray  # (n, 4) float32
    confidence: np.ndarray  # (n,) float32, 0 where invalid
    valid: np.ndarray  # (n,) bool: a face is known in this frame
    track_ids: np.ndarray  # (n,) int32, -1 where invalid
    mouth: np.ndarray | None  # (n, MOUTH_SIZE, MOUTH_SIZE, 3) uint8 RGB, black where invalid
    face: np.ndarray | None  # (n, FACE_SIZE, FACE_SIZE, 3) uint8 RGB
    frame_size: tuple[int, int]  # (width, height) of the frames the boxes refer to
    backend: str
    tracks: list[TrackSummary] = field(default_factory=list)  # all tracks so far
    seconds: float = 0.0  # processing time
    features: np.ndarray | None = None  # (n, 3) float32 FACE_FEATURES, NaN where not measured (no landmarks)
    roll: np.ndarray | None = None  # (n,) float32 head roll (radians) the crops were levelled by; 0 without landmarks
    #: with crops, every STILL_EVERY-th frame as a small JPEG: absolute frame index -> ("face",
    #: base64 JPEG of its face crop) or, without a face, ("frame", the whole frame at
    #: FRAME_STILL_PX); the report's thumbnails of flagged segments, without a new seek into the file
    stills: dict[int, tuple[str, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.valid)

    @property
    def coverage(self) -> float:
        """Fraction of frames with a valid face."""
        return float(self.valid.mean()) if len(self.valid) else 0.0

    @property
    def faces(self) -> list[TrackSummary]:
        """Tracks that are faces rather than passing false detections (>= 3 detections)."""
        return [t for t in self.tracks if t.detections >= 3]

    @property
    def main_track(self) -> int | None:
        faces = self.faces or self.tracks
        return max(faces, key=lambda t: t.score).track_id if faces else None

    @property
    def explanation(self) -> str:
        faces = sorted(self.faces or self.tracks, key=lambda t: -t.score)
        if not faces:
            return "no face was found"
        main = faces[0]
        text = (
            f"face track #{main.track_id} is the main speaker: seen on {main.keyframes} keyframes "
            f"(frames {main.first_frame}-{main.last_frame}, {main.detections} detections), "
            f"mean face height {main.mean_height:.0%} of the frame, "
            f"score {main.score:.1f} (persistence x size)"
        )
        if len(faces) > 1:
            others = ", ".join(f"#{t.track_id} score {t.score:.1f}" for t in faces[1:4])
            text += f"; other faces: {others}"
        return text

    def to_dict(self) -> dict:
        """Boxes and facts (no crops), for JSON."""
        return {
            "start_frame": self.start_frame,
            "n_frames": len(self),
            "coverage": self.coverage,
            "backend": self.backend,
            "frame_size": list(self.frame_size),
            "n_faces": len(self.faces),
            "main_track": self.main_track,
            "explanation": self.explanation,
            "tracks": [t.to_dict() for t in self.tracks],
            "seconds": self.seconds,
        }

    @staticmethod
    def concatenate(parts: list["FaceTrack"]) -> "FaceTrack":
        if not parts:
            raise ValueError("nothing to concatenate")
        cat = lambda name: None if getattr(parts[0], name) is None else np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return FaceTrack(
            start_frame=parts[0].start_frame, boxes=cat("boxes"), mouth_boxes=cat("mouth_boxes"),
            confidence=cat("confidence"), valid=cat("valid"), track_ids=cat("track_ids"), mouth=cat("mouth"),
            face=cat("face"), frame_size=parts[0].frame_size, backend=parts[0].backend, tracks=parts[-1].tracks,
            seconds=sum(p.seconds for p in parts), features=cat("features"), roll=cat("roll"),
            stills={k: v for p in parts for k, v in p.stills.items()},
        )


class FaceTracker:
    """Streaming face tracker. ``track(media)`` for a whole clip, ``iter_windows`` for long ones.

    Args:
        backend: the name of a registered backend (:func:`~avdetect.faces.face_backend_names`:
            ``"auto"``, the default: ``"mediapipe"`` when installed, else ``"opencv"``; or
            ``"face-alignment"``), or a :class:`~avdetect.faces.FaceBackend`.
        track_every: frames between keyframes (measurements; boxes are interpolated between);
            None: the backend's ``cadence`` if it has one, else 5.
        detect_every: frames between detector runs on a confirmed, well-matched track; None:
            the backend's ``cadence`` if it has one, else 25.
        search_every: frames between whole-frame searches for new faces while tracking.
        min_face: smallest face searched for, as a fraction of the frame's shorter side.
        max_misses: keyframes in a row a track may be missed before it ends.
        smoothing: weight of the new detection in the keyframe box blend (1 = no smoothing).
        crops: produce mouth and face crops (False: boxes only, faster).
    """

    def __init__(
        self, backend: str | FaceBackend = "auto", track_every: int | None = None, detect_every: int | None = None,
        search_every: int = 50,
        min_face: float = 0.06, max_misses: int = 2, smoothing: float = 0.6, crops: bool = True,
    ):
        self.backend = get_backend(backend) if isinstance(backend, str) else as_backend(backend)
        cadence = getattr(self.backend, "cadence", (5, 25))
        self.track_every = max(1, int(track_every if track_every is not None else cadence[0]))
        self.detect_every = max(self.track_every, int(detect_every if detect_every is not None else cadence[1]))
        self.search_every = max(self.track_every, int(search_every))
        self.min_face = min_face
        self.max_misses = max_misses
        self.smoothing = smoothing
        self.crops = crops
        # backends written before FaceBackend.detect took ``quick`` are still searched (in full)
        self._quick_ok = "quick" in inspect.signature(self.backend.detect).parameters

    def _search(self, image: np.ndarray, min_face: float, quick: bool = False) -> list:
        return self.backend.detect(image, min_face=min_face, quick=quick) if self._quick_ok else (
            self.backend.detect(image, min_face=min_face))

    # -- keyframe processing ------------------------------------------------------------
    @staticmethod
    def _features(det) -> np.ndarray:
        return landmark_features(det.landmarks) if det.landmarks is not None else _NO_FEATURES

    @staticmethod
    def _roll(det, previous: float) -> float:
        """The head roll measured on a detection's eyes; ``previous`` when it has none."""
        roll = eye_roll(det.landmarks) if det.landmarks is not None else float("nan")
        return roll if np.isfinite(roll) else previous

    def _mouth_box(self, det) -> np.ndarray:
        if det.landmarks is not None:
            return mouth_box_from_landmarks(det.landmarks)
        return mouth_box_from_face(det.box)

    def _keyframe(self, i: int, image: np.ndarray, luma: np.ndarray, state: _Pass) -> None:
        """Measure keyframe i. ``image`` is what the backend wants (luma or RGB); ``luma`` (H, W)."""
        tracks = state.tracks
        live = [t for t in tracks if t.alive]
        height = luma.shape[0]
        search = not live or i % self.search_every == 0
        found: list = []
        if search:
            # faces much smaller than the tracked main face are not candidates for the speaker
            if live:
                biggest = max((t.face_box[3] - t.face_box[1]) for t in live) / min(luma.shape[:2])
                found = self._search(image, max(self.min_face, TRACKED_SEARCH_SHARE * biggest), quick=True)
            else:  # coarse to fine: large faces are cheap to find; small ones are looked for only
                # if none is, and at most every search_every frames (see the module docstring)
                found = self._search(image, max(self.min_face, COARSE_MIN_FACE))
                if not found and COARSE_MIN_FACE > self.min_face and (
                        state.last_fine is None or i - state.last_fine >= self.search_every):
                    state.last_fine = i
                    found = self._search(image, self.min_face)
        claimed: set[int] = set()
        for t in sorted(live, key=lambda t: -t.score):
            det, detected = None, True
            # a search detection overlapping the track continues it
            cands = [(iou(d.box, t.face_box), k) for k, d in enumerate(found) if k not in claimed and _close(d.box, t.face_box)]
            if cands:
                k = max(cands)[1]
                claimed.add(k)
                det = found[k]
            elif t.detections >= 2 and i - t.last_detect < self.detect_every:
                det = self._match(luma, t)  # None when the match is weak: then the detector runs
                detected = det is None
            if det is None:
                near = [d for d in self.backend.detect_near(image, t.face_box) if _close(d.box, t.face_box)]
                if near:
                    det = max(near, key=lambda d: iou(d.box, t.face_box) + d.score)
            if det is None:
                t.misses += 1
                if t.misses > self.max_misses:
                    t.alive = False
                continue
            box = det.box.astype(np.float32)
            roll = self._roll(det, t.roll) if detected else t.roll
            if detected:
                mouth = self._mouth_box(det).astype(np.float32)
            else:  # a template match moves the face: the mouth moves with it
                mouth = t.mouth_box + (box - t.face_box)
            if iou(box, t.face_box) > 0.3:  # smooth unless the face jumped (cut, fast move)
                a = self.smoothing
                box = a * box + (1 - a) * t.face_box
                mouth = a * mouth + (1 - a) * t.mouth_box
                roll = a * roll + (1 - a) * t.roll
            feats = self._features(det) if detected else _NO_FEATURES  # measured, never smoothed (blinks)
            self._update(t, i, box, mouth, det.score, height, luma if detected else None, feats, roll)
        for k, d in enumerate(found):
            if k in claimed or any(t.alive and iou(d.box, t.face_box) > 0.3 for t in tracks):
                continue
            t = _Track(track_id=state.next_id, first_frame=i)
            state.next_id += 1
            self._update(t, i, d.box.astype(np.float32), self._mouth_box(d).astype(np.float32), d.score, height, luma,
                         self._features(d), self._roll(d, 0.0))
            tracks.append(t)

    @staticmethod
    def _patch(luma: np.ndarray, box: np.ndarray, scale: float) -> tuple[np.ndarray, int, int, float] | None:
        """Luma under ``box`` (clipped) scaled by about ``scale``: (patch, x1, y1, exact scale)."""
        h, w = luma.shape
        x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
        x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        if x2 - x1 < 8 or y2 - y1 < 8:
            return None
        patch = shrink(luma[y1:y2, x1:x2], scale)
        return patch, x1, y1, patch.shape[0] / (y2 - y1)

    def _match(self, luma: np.ndarray, t: _Track) -> Detection | None:
        """Where the face patch of the last detection is now (normalised cross-correlation)."""
        side = float(max(t.face_box[2] - t.face_box[0], t.face_box[3] - t.face_box[1]))
        scale = TEMPLATE_PX / side
        cx, cy = (t.face_box[0] + t.face_box[2]) / 2, (t.face_box[1] + t.face_box[3]) / 2
        half = side * 0.85
        got = self._patch(luma, np.array([cx - half, cy - half, cx + half, cy + half]), scale)
        if got is None or t.template is None:
            return None
        region, rx, ry, scale = got
        th, tw = t.template.shape
        if region.shape[0] <= th or region.shape[1] <= tw:
            return None
        res = cv2.matchTemplate(region, t.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (mx, my) = cv2.minMaxLoc(res)
        if best < MATCH_MIN:
            return None
        x1, y1 = rx + mx / scale, ry + my / scale
        box = np.array([x1, y1, x1 + (t.face_box[2] - t.face_box[0]), y1 + (t.face_box[3] - t.face_box[1])], np.float32)
        return Detection(box, t.det_conf * float(best))

    def _update(self, t: _Track, i: int, box, mouth, conf: float, height: int, luma: np.ndarray | None,
                feats: np.ndarray | None = None, roll: float = 0.0) -> None:
        """Record a measurement; ``luma`` is given when it came from the detector (new template)."""
        t.face_box, t.mouth_box, t.conf, t.roll = box, mouth, float(conf), float(roll)
        t.last_key, t.misses = i, 0
        t.seen += 1
        if luma is not None:
            t.detections += 1
            t.last_detect, t.det_conf = i, float(conf)
            side = float(max(box[2] - box[0], box[3] - box[1]))
            got = self._patch(luma, box, TEMPLATE_PX / side)
            t.template = got[0] if got is not None else None
        h = float(box[3] - box[1]) / height
        t.height_sum += h
        t.score += conf * h
        t.keys[i] = (box, mouth, float(conf), _NO_FEATURES if feats is None else feats, float(roll))
        while len(t.keys) > 2:  # interpolation needs only the last two keyframes
            del t.keys[min(t.keys)]

    # -- per-frame states between keyframes ---------------------------------------------
    @staticmethod
    def _state_at(t: _Track, j: int, prev_key: int | None, key: int):
        """(face_box, mouth_box, conf, features, roll) of track t at frame j in (prev_key, key], or None."""
        after = t.keys.get(key)
        before = t.keys.get(prev_key) if prev_key is not None else None
        if after is not None and before is not None:
            w = (j - prev_key) / (key - prev_key)
            return (
                (1 - w) * before[0] + w * after[0],
                (1 - w) * before[1] + w * after[1],
                (1 - w) * before[2] + w * after[2],
                after[3] if j == key else (1 - w) * before[3] + w * after[3],
                (1 - w) * before[4] + w * after[4],
            )
        # one-sided holds only for confirmed tracks (>= 2 detections): a single false
        # detection then marks at most its own keyframe as a face, not the frames around it
        if after is not None:
            if j == key or prev_key is None:
                return after
            return (after[0], after[1], after[2] * 0.5, _NO_FEATURES, after[4]) if t.detections >= 2 else None
        if before is not None and j < key and t.detections >= 2:
            return before[0], before[1], before[2] * 0.5, _NO_FEATURES, before[4]
        return None

    # -- the pass ------------------------------------------------------------------------
    def iter_windows(self, media, window: int = 250, start: int = 0, stop: int | None = None) -> Iterator[FaceTrack]:
        """Yield one :class:`FaceTrack` per ``window`` frames over ``[start, stop)`` of ``media``."""
        stop = media.n_frames if stop is None else min(stop, media.n_frames)
        w, h = media.working_size
        state = _Pass()
        tracks = state.tracks
        pending: list[tuple[int, np.ndarray]] = []
        out = _Window(start, window, w, h, self.crops)
        prev_key: int | None = None
        t_window = time.perf_counter()
        wants_rgb = bool(self.backend.wants_rgb)
        for first, frames in media.iter_windows(size=min(window, 50), start=start, stop=stop, pixel_format="yuv420p"):
            for k in range(len(frames)):
                i = first + k
                pending.append((i, frames[k]))
                if (i - start) % self.track_every != 0 and i != stop - 1:
                    continue
                luma = i420_planes(frames[k], w, h)[0]
                image = cv2.cvtColor(frames[k], cv2.COLOR_YUV2RGB_I420) if wants_rgb else luma
                self._keyframe(i, image, luma, state)
                for j, frame in pending:
                    best = None
                    for t in tracks:
                        st = self._state_at(t, j, prev_key, i)
                        if st is not None and (best is None or t.score > best[0].score):
                            best = (t, st)
                    out.add(j, frame, best)
                    if out.full:
                        yield out.finish(tracks, self.backend.name, time.perf_counter() - t_window)
                        t_window = time.perf_counter()
                        out = _Window(j + 1, window, w, h, self.crops)
                pending.clear()
                prev_key = i
        if out.n:
            yield out.finish(tracks, self.backend.name, time.perf_counter() - t_window)

    def track(self, media, start: int = 0, stop: int | None = None) -> FaceTrack:
        """The whole span as one :class:`FaceTrack` (memory grows with its length when crops=True)."""
        parts = list(self.iter_windows(media, window=1 << 30 if not self.crops else 250, start=start, stop=stop))
        if not parts:
            w, h = media.working_size
            return _Window(start, 0, w, h, self.crops).finish([], self.backend.name, 0.0)
        return parts[0] if len(parts) == 1 else FaceTrack.concatenate(parts)


class _Window:
    """Output buffer of one window of frames."""

    def __init__(self, start: int, size: int, width: int, height: int, crops: bool):
        self.start, self.size, self.n = start, size, 0
        self.frame_size = (width, height)
        cap = max(0, min(size, 256))
        self.boxes = np.zeros((cap, 4), np.float32)
        self.mouth_boxes = np.zeros((cap, 4), np.float32)
        self.conf = np.zeros(cap, np.float32)
        self.valid = np.zeros(cap, bool)
        self.ids = np.full(cap, -1, np.int32)
        self.features = np.full((cap, len(FACE_FEATURES)), np.nan, np.float32)
        self.roll = np.zeros(cap, np.float32)
        self.crops = crops
        self.mouth = np.zeros((cap, MOUTH_SIZE, MOUTH_SIZE, 3), np.uint8) if crops else None
        self.face = np.zeros((cap, FACE_SIZE, FACE_SIZE, 3), np.uint8) if crops else None
        self.stills: dict[int, tuple[str, str]] = {}

    @property
    def full(self) -> bool:
        return self.n >= self.size

    def _grow(self) -> None:
        cap = max(16, 2 * len(self.valid))
        def grow(a, fill=0):  # noqa: E306
            b = np.full((cap, *a.shape[1:]), fill, a.dtype)
            b[: len(a)] = a
            return b
        self.boxes, self.mouth_boxes, self.conf, self.valid = grow(self.boxes), grow(self.mouth_boxes), grow(self.conf), grow(self.valid)
        self.ids = grow(self.ids, -1)
        self.features = grow(self.features, np.nan)
        self.roll = grow(self.roll)
        if self.crops:
            self.mouth, self.face = grow(self.mouth), grow(self.face)

    def add(self, j: int, frame: np.ndarray, best) -> None:
        if self.n >= len(self.valid):
            self._grow()
        n = self.n
        if best is not None:
            t, (box, mouth_box, conf, feats, roll) = best
            self.boxes[n], self.mouth_boxes[n], self.conf[n], self.features[n] = box, mouth_box, conf, feats
            self.roll[n] = roll
            self.valid[n], self.ids[n] = True, t.track_id
            if self.crops:
                w, h = self.frame_size
                self.mouth[n] = crop_i420(frame, w, h, mouth_box, MOUTH_SIZE, roll)
                self.face[n] = crop_i420(frame, w, h, face_crop_box(box), FACE_SIZE, roll)
        if self.crops and j % STILL_EVERY == 0:
            self.stills[j] = ("face", jpeg_base64(self.face[n])) if best is not None else \
                ("frame", jpeg_base64(small_frame(cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_I420))))
        self.n += 1

    def finish(self, tracks, backend: str, seconds: float) -> FaceTrack:
        n = self.n
        return FaceTrack(
            start_frame=self.start, boxes=self.boxes[:n].copy(), mouth_boxes=self.mouth_boxes[:n].copy(),
            confidence=self.conf[:n].copy(), valid=self.valid[:n].copy(), track_ids=self.ids[:n].copy(),
            mouth=self.mouth[:n].copy() if self.crops else None, face=self.face[:n].copy() if self.crops else None,
            frame_size=self.frame_size, backend=backend, tracks=[t.summary() for t in tracks], seconds=seconds,
            features=self.features[:n].copy(), roll=self.roll[:n].copy(), stills=dict(self.stills),
        )


def track_faces(media, backend="auto", crops: bool = True, **kwargs) -> FaceTrack:
    """Face and mouth track of the main speaker over the whole of ``media``.

    Keyword arguments go to :class:`FaceTracker`. Raises :class:`avdetect.errors.MediaError`
    when the media has no video.
    """
    return FaceTracker(backend=backend, crops=crops, **kwargs).track(media)
