"""The domain of a checkpoint (what its training covered), what ``detect`` measures of a file,
and the checks between the two.

A talking-face detector has only learned what real and manipulated *talking faces* look and
sound like. On other input (an audio-only file, a still picture with a voice over it, a face a
few pixels high, two people in a frame, a clip without speech) its scores mean nothing, and a
confident "fake" there is a false accusation. So ``detect`` measures each file against the
checkpoint's :class:`Domain` and says ``unknown`` with the reasons instead (see
:mod:`avdetect.verdict` for the verdict rule).

Everything is measured from what detection already has, while it streams (no second decode):

* **streams**: the file's video and audio streams against :attr:`Domain.streams`;
* **face coverage**: fraction of the 25 Hz frames with a tracked face;
* **face size**: median height of the tracked face box over the frames with a face, in *source*
  pixels (the box is found on the working frames, which are scaled to at most ``max_side``, and
  scaled back) and as a fraction of the frame height;
* **several faces**: face tracks (:class:`avdetect.faces.tracking.TrackSummary`, those with >= 3
  detections) whose persistence x size score is at least :attr:`Domain.comparable_face_ratio` of
  the main track's and that are on screen together with it (their frame ranges overlap by at
  least half of the shorter one; a cut to another shot of the same person starts a new track
  that does not overlap the old one, so it does not count);
* **still / frozen video**: how much the mouth moves: mean absolute grey-level difference (0-255)
  between the mouth crops of consecutive frames with a face, after warping the second onto the
  image region of the first (the tracker's box moves a little even over a still picture, and
  that must not count as motion; both crops lightly blurred, so that resampling differences do
  not either), 90th percentile over the clip;
* **speech**: fraction of the 25 Hz frames that hold speech, by the energy + spectral gate of
  :func:`avdetect.forensics.audio.speech_activity` (speech band 200-4000 Hz at least 12 dB above
  the clip's noise floor and a spectrum that is not flat) on the per-frame features of
  :mod:`avdetect.forensics.audio`, computed on the audio samples the model reads.

**Measured** (``../shared``, Dec 2026; the defaults of :class:`Domain` sit well outside these
ranges): the 32 real clips' main faces are 124-347 px high, 0.32-0.68 of the frame height,
tracked in 83-100 % of the frames; no clip shows a second comparable face (the largest other
track, in a generated clip, scores 0.06x the main one); mouth motion 2.3-20 (GRID studio clips,
the stillest, 2.3-5.3) against 0.11-0.37 for still pictures made from frames of real and synthetic
clips; speech in 20-89 % of the frames, except one clip (2 %) whose loud continuous background
never lets speech stand 12 dB above it. Synthetic benchmark clips (256 px): faces 128-150 px,
mouth motion 3.1-4.6, speech 77-87 %.

**Music** is not detected: that gate is an energy gate, and music passes it as "speech". No
robust training-free music/speech discriminator was found that could be checked here (no music
clips to measure on), so none is used; the still-picture check catches the common case of music
over a picture, and the stream check audio-only files.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields

import cv2
import numpy as np

from avdetect.report.model import VerdictReason
from avdetect.timegrid import SAMPLES_PER_FRAME

log = logging.getLogger(__name__)

STREAMS = ("video", "audio")
MOTION_PERCENTILE = 90  # mouth motion: this percentile of the consecutive-frame differences
MOTION_BLUR_SIGMA = 1.0  # px, Gaussian blur of the mouth crops before they are compared
MIN_MOTION_PAIRS = 10  # fewer pairs of consecutive face frames: motion not measured


@dataclass(frozen=True)
class Domain:
    """What a checkpoint's training covered; inputs outside it get the verdict ``unknown``.

    The defaults fit a talking-face model trained on frontal talking heads with speech (the
    synthetic benchmark, LAV-DF, FakeAVCeleb, AV-Deepfake1M, real talking-head footage).

    streams: streams the checkpoint was trained on, all of which the file must have.
    min_face_coverage: fraction of frames with a tracked face.
    min_face_px: main face height in source pixels.
    min_face_frac: main face height as a fraction of the source frame height.
    min_speech_frac: fraction of frames that hold speech.
    max_comparable_faces: faces of comparable size on screen together.
    comparable_face_ratio: a face track whose persistence x size score is at least this share of
        the main one's counts as comparable.
    min_mouth_motion: mouth motion (grey levels, see the module docstring) below which the video
        counts as a still picture or frozen.
    """

    streams: tuple[str, ...] = STREAMS
    min_face_coverage: float = 0.5
    min_face_px: float = 40.0
    min_face_frac: float = 0.06
    min_speech_frac: float = 0.15
    max_comparable_faces: int = 1
    comparable_face_ratio: float = 0.5
    min_mouth_motion: float = 1.0

    @classmethod
    def from_dict(cls, data) -> "Domain":
        """A domain from calibration.json's ``domain`` object; absent keys take the defaults.

        Raises ValueError for anything malformed (unknown key, wrong type, out of range), which
        :func:`avdetect.checkpoints.read_calibration` turns into a :class:`CheckpointError`.
        """
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"'domain' must be an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown domain key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        kw: dict = {}
        if "streams" in data:
            s = data["streams"]
            if not isinstance(s, list) or not s or any(x not in STREAMS for x in s) or len(set(s)) != len(s):
                raise ValueError(f"domain.streams must be a non-empty list of distinct {list(STREAMS)}, got {s!r}")
            kw["streams"] = tuple(x for x in STREAMS if x in s)
        for name, lo, hi in (("min_face_coverage", 0.0, 1.0), ("min_face_frac", 0.0, 1.0),
                             ("min_speech_frac", 0.0, 1.0), ("comparable_face_ratio", 0.0, 1.0),
                             ("min_face_px", 0.0, 1e5), ("min_mouth_motion", 0.0, 255.0)):
            if name in data:
                v = data[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
                    raise ValueError(f"domain.{name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
                kw[name] = float(v)
        if "max_comparable_faces" in data:
            v = data["max_comparable_faces"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"domain.max_comparable_faces must be an integer >= 1, got {v!r}")
            kw["max_comparable_faces"] = v
        return cls(**kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["streams"] = list(self.streams)
        return d


@dataclass
class DomainFacts:
    """What detect measured of one file (None: not measurable, e.g. no video / no face)."""

    has_video: bool
    has_audio: bool
    n_frames: int
    face_coverage: float | None = None
    face_px: float | None = None  # median main-face box height, source pixels
    face_frac: float | None = None  # the same / source frame height
    other_faces: list[float] | None = None  # score / main score of each other face track on screen with it
    mouth_motion: float | None = None  # grey levels (0-255), see the module docstring
    speech_frac: float | None = None  # fraction of the clip's frames with speech
    notes: list[str] = field(default_factory=list)  # measurements that could not be made, and why

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 4)
        if self.other_faces is not None:
            d["other_faces"] = [round(float(r), 4) for r in self.other_faces]
        return d


def check_domain(facts: DomainFacts, domain: Domain) -> list[VerdictReason]:
    """Every way in which the file falls outside ``domain``, in plain words with the measured
    value (an empty list: inside). Checks whose measurement is missing are skipped, except that a
    missing stream or face is itself a reason."""
    out: list[VerdictReason] = []
    trained = " and ".join(domain.streams)
    if "video" in domain.streams and not facts.has_video:
        out.append(VerdictReason("audio_only", f"the file has no video stream (the checkpoint was trained on {trained})",
                                 "no video stream"))
    if "audio" in domain.streams and not facts.has_audio:
        out.append(VerdictReason("no_audio", f"the file has no audio stream (the checkpoint was trained on {trained})",
                                 "no audio stream"))
    if "video" in domain.streams and facts.has_video:
        cov = facts.face_coverage or 0.0
        if cov == 0.0:
            out.append(VerdictReason("no_face", "no face was tracked in any frame (the checkpoint judges a talking face)",
                                     "no face"))
        else:
            if cov < domain.min_face_coverage:
                out.append(VerdictReason(
                    "low_face_coverage", f"a face was tracked in {cov:.0%} of the frames (the checkpoint was trained on "
                                         f"clips with a face in {domain.min_face_coverage:.0%} of the frames or more)",
                    f"face in {cov:.0%} of frames"))
            if facts.face_px is not None and facts.face_px < domain.min_face_px:
                out.append(VerdictReason(
                    "small_face", f"the main face is {facts.face_px:.0f} px high in the source (the checkpoint was trained "
                                  f"on faces of {domain.min_face_px:.0f} px or more)", f"small face {facts.face_px:.0f} px"))
            if facts.face_frac is not None and facts.face_frac < domain.min_face_frac:
                out.append(VerdictReason(
                    "small_face_in_frame", f"the main face is {facts.face_frac:.1%} of the frame height (the checkpoint was "
                                           f"trained on faces of {domain.min_face_frac:.0%} of the frame height or more)",
                    f"face {facts.face_frac:.1%} of frame height"))
            if facts.mouth_motion is not None and facts.mouth_motion < domain.min_mouth_motion:
                out.append(VerdictReason(
                    "still_video", f"the face barely moves: consecutive mouth crops differ by {facts.mouth_motion:.2f} grey "
                                   f"levels ({MOTION_PERCENTILE}th percentile; the checkpoint was trained on talking faces, "
                                   f"{domain.min_mouth_motion:g} or more): a still picture or a frozen video",
                    f"still picture (mouth motion {facts.mouth_motion:.2f})"))
            comparable = sorted((r for r in facts.other_faces or [] if r >= domain.comparable_face_ratio), reverse=True)
            if 1 + len(comparable) > domain.max_comparable_faces:
                n = 1 + len(comparable)
                out.append(VerdictReason(
                    "several_faces", f"{n} faces of comparable size are on screen together (the second scores "
                                     f"{comparable[0]:.2f}x the main face in persistence x size; the checkpoint was trained "
                                     f"on {domain.max_comparable_faces} face{'s' if domain.max_comparable_faces > 1 else ''} "
                                     "at a time)", f"{n} faces on screen"))
    if "audio" in domain.streams and facts.has_audio and facts.speech_frac is not None \
            and facts.speech_frac < domain.min_speech_frac:
        out.append(VerdictReason(
            "no_speech", f"speech stands out from the background in {facts.speech_frac:.0%} of the frames (the checkpoint "
                         f"was trained on clear speech in {domain.min_speech_frac:.0%} of the frames or more): no speech, "
                         "or speech buried in continuous sound such as music or noise",
            f"speech in {facts.speech_frac:.0%} of frames"))
    return out


def _snapped(box: np.ndarray) -> tuple[float, float, float, float]:
    """The even-pixel rectangle a crop is cut from (as :func:`avdetect.faces.crops.crop_i420`
    places it: ``_placement(..., align=2)``); the crop spans it exactly."""
    x1, y1 = np.floor(box[0] / 2) * 2, np.floor(box[1] / 2) * 2
    return x1, y1, max(x1 + 2, np.ceil(box[2] / 2) * 2), max(y1 + 2, np.ceil(box[3] / 2) * 2)


def _aligned_difference(g0: np.ndarray, box0: np.ndarray, g1: np.ndarray, box1: np.ndarray, margin: int = 12) -> float:
    """Mean absolute grey-level difference between crop ``g0`` and crop ``g1`` warped onto the
    image region of ``g0`` (so that the tracker's box moving over a still picture is no motion),
    over the crop's interior (``margin`` px from the edges left out)."""
    size = g0.shape[0]
    a0, b0, a2, b2 = _snapped(box0)
    c0, d0, c2, d2 = _snapped(box1)
    ax, ay = (a2 - a0) / (c2 - c0), (b2 - b0) / (d2 - d0)
    # crop-0 pixel u -> image x = a0 + (u + 0.5) * w0 / size - 0.5 -> crop-1 pixel (x + 0.5 - c0) * size / w1 - 0.5
    m = np.float32([[ax, 0, (a0 - c0) * size / (c2 - c0) + 0.5 * ax - 0.5],
                    [0, ay, (b0 - d0) * size / (d2 - d0) + 0.5 * ay - 0.5]])
    warped = cv2.warpAffine(g1, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    sl = slice(margin, size - margin)
    return float(np.abs(warped[sl, sl] - g0[sl, sl]).mean())


class DomainMeter:
    """Measures :class:`DomainFacts` from the data ``detect`` streams past, window by window.

    Feed it each model window's mouth crops (:meth:`add_mouths`) and audio samples
    (:meth:`add_audio`) in increasing order (windows may overlap; frames and samples already seen
    are skipped), then call :meth:`finish` with the whole-video face track. Memory: a few floats
    per frame.
    """

    def __init__(self, n_frames: int, has_video: bool, has_audio: bool, audio_frames: int = 0):
        self.n = int(n_frames)
        self.has_video, self.has_audio = bool(has_video), bool(has_audio)
        self.audio_frames = int(audio_frames)
        # mouth motion per frame (NaN where the frame or its predecessor has no face)
        self._motion = np.full(self.n, np.nan, np.float32)
        self._mouth_done = 0
        self._last_mouth: tuple | None = None  # (grey crop, mouth box) of frame _mouth_done - 1; None: no face
        # speech features
        self._gate = None
        self._speech_notes: list[str] = []
        if self.has_audio:
            try:
                from avdetect.forensics import audio as _fa

                self._gate = _fa
            except ImportError as err:  # the speech measurement lives in avdetect.forensics
                self._speech_notes.append(f"speech not measured ({err})")
        nfft = self._gate.NFFT if self._gate is not None else 1024
        self._nfft = nfft
        self._half = (nfft - SAMPLES_PER_FRAME) // 2  # samples before a frame's 640 that its FFT uses
        self._buf = np.zeros(self._half, np.float32)  # samples from _buf_start (zeros before the start)
        self._buf_start = -self._half
        self._have = 0  # samples [0, _have) received
        self._next_frame = 0  # first frame whose speech features are not computed yet
        self._env: list[np.ndarray] = []
        self._flat: list[np.ndarray] = []
        self._speech: np.ndarray | None = None

    # ------------------------------------------------------------------ video
    def add_mouths(self, start: int, mouth: np.ndarray, valid: np.ndarray, mouth_boxes: np.ndarray) -> None:
        """Mouth crops (n, S, S, 3) uint8, face flags (n,) and the mouth boxes the crops were cut
        from (n, 4), working-frame pixels, of frames [start, start + n)."""
        lo = max(start, self._mouth_done)
        if lo >= start + len(valid):
            return
        k = lo - start
        grey = np.asarray(mouth[k:], np.float32) @ np.float32([0.299, 0.587, 0.114])  # (m, S, S)
        # a light blur: resampling differences between two crops of one picture are fine detail
        grey = [cv2.GaussianBlur(g, (0, 0), MOTION_BLUR_SIGMA) for g in grey]
        v = np.asarray(valid[k:], bool)
        boxes = np.asarray(mouth_boxes[k:], np.float64)
        prev = self._last_mouth if lo == self._mouth_done else None
        for j in range(len(grey)):
            if v[j] and prev is not None:
                self._motion[lo + j] = _aligned_difference(prev[0], prev[1], grey[j], boxes[j])
            prev = (grey[j], boxes[j]) if v[j] else None
        self._last_mouth = prev
        self._mouth_done = lo + len(grey)

    # ------------------------------------------------------------------ audio
    def add_audio(self, start_sample: int, samples: np.ndarray) -> None:
        """Audio samples [start_sample, start_sample + len); contiguous with or overlapping the last."""
        if self._gate is None:
            return
        end = start_sample + len(samples)
        if end <= self._have:
            return
        if start_sample > self._have:  # a gap (should not happen): zeros
            self._buf = np.concatenate([self._buf, np.zeros(start_sample - self._have, np.float32)])
            self._have = start_sample
        new = np.asarray(samples[self._have - start_sample:], np.float32)
        self._buf = np.concatenate([self._buf, new])
        self._have = end
        self._compute(final=False)

    def _compute(self, final: bool) -> None:
        limit = self.audio_frames
        if final:  # zeros after the last sample, as the forensic analysis pads
            need = limit * SAMPLES_PER_FRAME - self._half + self._nfft
            have_to = self._buf_start + len(self._buf)
            if need > have_to:
                self._buf = np.concatenate([self._buf, np.zeros(need - have_to, np.float32)])
        have_to = self._buf_start + len(self._buf)
        # frame i needs samples [i * 640 - half, i * 640 - half + NFFT)
        stop = min(limit, (have_to + self._half - self._nfft) // SAMPLES_PER_FRAME + 1)
        i0 = self._next_frame
        if stop <= i0 or (not final and stop - i0 < 64):  # batch small windows
            return
        a = i0 * SAMPLES_PER_FRAME - self._half - self._buf_start
        b = (stop - 1) * SAMPLES_PER_FRAME - self._half + self._nfft - self._buf_start
        env, flat = self._gate.speech_features(self._buf[a:b], stop - i0)
        self._env.append(env.astype(np.float32))
        self._flat.append(flat.astype(np.float32))
        self._next_frame = stop
        keep = stop * SAMPLES_PER_FRAME - self._half - self._buf_start
        self._buf = self._buf[keep:]
        self._buf_start += keep

    def speech(self) -> np.ndarray | None:
        """Per-frame speech flags of the audio frames (after :meth:`finish`), or None."""
        return self._speech

    # ------------------------------------------------------------------ result
    def finish(self, valid: np.ndarray | None, boxes: np.ndarray | None, face_tracks,
               working_size: tuple[int, int], source_size: tuple[int, int]) -> DomainFacts:
        """The measurements. ``valid``/``boxes``: the whole video's face flags and boxes (working
        frame pixels); ``face_tracks``: the tracker's :class:`TrackSummary` list (all tracks)."""
        f = DomainFacts(has_video=self.has_video, has_audio=self.has_audio, n_frames=self.n)
        f.notes += self._speech_notes
        if self.has_video and valid is not None:
            valid = np.asarray(valid, bool)
            f.face_coverage = float(valid.mean()) if len(valid) else 0.0
            if valid.any() and boxes is not None:
                wh = float(working_size[1]) or 1.0
                h = float(np.median(boxes[valid, 3] - boxes[valid, 1]))
                f.face_frac = h / wh
                f.face_px = f.face_frac * float(source_size[1] or working_size[1])
            m = self._motion[~np.isnan(self._motion)]
            if len(m) >= MIN_MOTION_PAIRS:
                f.mouth_motion = float(np.percentile(m, MOTION_PERCENTILE))
            elif valid.any():
                f.notes.append(f"mouth motion not measured ({len(m)} pairs of consecutive face frames)")
            self._faces(f, face_tracks)
        if self.has_audio and self._gate is not None:
            self._compute(final=True)
            env = np.concatenate(self._env) if self._env else np.zeros(0, np.float32)
            flat = np.concatenate(self._flat) if self._flat else np.zeros(0, np.float32)
            self._speech = self._gate.speech_activity(env.astype(np.float64), flat.astype(np.float64))
            f.speech_frac = float(self._speech.sum()) / max(1, self.n)
        return f

    @staticmethod
    def _faces(f: DomainFacts, face_tracks) -> None:
        faces = [t for t in (face_tracks or []) if t.detections >= 3]  # as FaceTrack.faces
        if not faces:
            f.other_faces = []
            return
        main = max(faces, key=lambda t: t.score)
        ratios = []
        for t in faces:
            if t is main or main.score <= 0:
                continue
            overlap = min(t.last_frame, main.last_frame) - max(t.first_frame, main.first_frame)
            shorter = min(t.last_frame - t.first_frame, main.last_frame - main.first_frame)
            if overlap <= 0 or overlap < 0.5 * shorter:
                continue  # not on screen together (e.g. another shot after a cut)
            ratios.append(float(t.score / main.score))
        f.other_faces = sorted(ratios, reverse=True)
