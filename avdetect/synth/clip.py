"""Render one synthetic talking-head clip, real or manipulated, with its exact ground truth.

Every random choice comes from its own generator keyed by (clip seed, purpose), so that a
clip rendered with and without a manipulation shares identity, voice, words, head motion,
blinks, lighting and noise: the two versions differ only inside the manipulated spans.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from avdetect.errors import ConfigError, SynthError
from avdetect.synth import artefacts as art_mod
from avdetect.synth.face import FaceRenderer, Identity, sample_identity
from avdetect.synth.speech import Voice, mouth_per_frame, plan_utterance, sample_voice, synthesize
from avdetect.timegrid import (frame_to_sample, frames_to_seconds, n_frames_for_duration,
                               n_samples_for_duration, samples_to_seconds, seconds_to_frame, seconds_to_frames_round)

logger = logging.getLogger(__name__)

KINDS = ("real", "visual", "audio", "both", "offset")
SCOPES = ("segments", "clip")
VARIANTS = ("default", "holdout")
AUDIO_METHODS = ("clone", "vocoder", "other_voice")

# purposes for the keyed random generators
_R_IDENT, _R_VOICE, _R_WORDS, _R_MOTION, _R_NOISE, _R_MANIP, _R_FAKE, _R_ART = range(1, 9)


@dataclass
class Manipulation:
    """What to forge. ``segments`` (seconds) may be given; otherwise they are planned from the words.

    kind: real | visual | audio | both | offset; scope: segments (LAV-DF style, 1-3 spans) or
    clip (FakeAVCeleb style, the whole clip). strength in (0, 1]: artefact intensity.
    audio_method: clone (new words, near-copy of the voice), vocoder (same words re-synthesised)
    or other_voice (new words, another speaker); None picks one at random.
    """

    kind: str = "real"
    scope: str = "segments"
    strength: float = 0.6
    n_segments: int | None = None
    segments: list[tuple[float, float]] | None = None
    audio_method: str | None = None
    offset: float | None = None  # seconds, audio delayed (+) or advanced (-) against video

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown manipulation kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown manipulation scope {self.scope!r} (expected segments or clip)")
        if not 0.0 < self.strength <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {self.strength}")
        if self.audio_method is not None and self.audio_method not in AUDIO_METHODS:
            raise ConfigError(f"unknown audio method {self.audio_method!r} (expected one of {', '.join(AUDIO_METHODS)})")
        if self.n_segments is not None and not 1 <= self.n_segments <= 3:
            raise ConfigError(f"n_segments must be 1-3, got {self.n_segments}")


@dataclass
class ClipSpec:
    """Everything that determines one clip. ``identity_seed`` defaults to ``seed``."""

    seed: int
    duration: float = 5.0
    size: int = 256
    variant: str = "default"
    identity_seed: int | None = None
    manipulation: Manipulation = field(default_factory=Manipulation)
    crf: int | None = None  # None: drawn per clip in 20-30

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r} (expected default or holdout)")
        if not 1.0 <= self.duration <= 60.0:
            raise ConfigError(f"duration must be 1-60 s, got {self.duration}")
        if self.size % 16 or not 128 <= self.size <= 512:
            raise ConfigError(f"size must be a multiple of 16 in 128-512, got {self.size}")
        self.manipulation.validate()


@dataclass
class ClipTruth:
    """Ground truth of one rendered clip (seconds on the 25 fps grid)."""

    duration: float
    video_frames: int
    audio_frames: int
    kind: str
    scope: str
    visual_fake_segments: list[list[float]]
    audio_fake_segments: list[list[float]]
    fake_segments: list[list[float]]
    audio_method: str
    visual_style: str
    audio_style: str
    strength: float
    offset: float
    identity_id: str
    voice_id: str
    variant: str
    words: list[list[float]]

    @property
    def modify_video(self) -> bool:
        return bool(self.visual_fake_segments)

    @property
    def modify_audio(self) -> bool:
        return bool(self.audio_fake_segments)

    @property
    def modify_type(self) -> str:
        from avdetect.vocab import modify_type_of

        return modify_type_of(self.modify_video, self.modify_audio)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(modify_video=self.modify_video, modify_audio=self.modify_audio, modify_type=self.modify_type)
        return d


@dataclass
class RenderedClip:
    """Raw rendered content before encoding (useful for tests and the demo)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    audio: np.ndarray  # (n_samples,) float32 mono 16 kHz
    truth: ClipTruth
    mouth_box: tuple[int, int, int, int]  # lower-face box (face space) where visual forgeries act
    crf: int = 23  # x264 quality drawn for this clip (compression varies across clips)


def _rng(seed: int, purpose: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, purpose, *extra])


_CASCADE = None


def _cascade():
    global _CASCADE
    if _CASCADE is None:
        _CASCADE = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
        if _CASCADE.empty():
            raise SynthError("OpenCV Haar cascade haarcascade_frontalface_default.xml not found in cv2.data.haarcascades")
    return _CASCADE


@functools.lru_cache(maxsize=64)
def detectable_identity(identity_seed: int, size: int, variant: str, tries: int = 30) -> tuple[Identity, tuple[float, float], int]:
    """Draw an identity (and its light direction) that the default Haar face detector finds.

    Candidates are drawn from the keyed generator in turn and checked on extreme renders
    (mouth shut/wide, eyes closed, head tilted, dim/bright); the first one found in all of them
    is kept, so the choice is deterministic. Returns (identity, light_dir, background_seed).
    """
    casc = _cascade()
    for attempt in range(tries):
        rng = _rng(identity_seed, _R_IDENT, attempt)
        ident = sample_identity(rng, size, f"{variant[0]}{identity_seed % 10**8:08d}", variant)
        light = (float(rng.uniform(-0.45, 0.45)), float(rng.uniform(-0.45, 0.1)))
        bg_seed = int(rng.integers(2**31))
        r = FaceRenderer(ident, np.random.default_rng(bg_seed), light)
        ok = True
        for op, closure, pose, gain in ((0.0, 0.0, (-6, -4, -6, 0.95), 0.85), (1.0, 1.0, (6, 4, 6, 1.05), 1.1), (0.5, 0.0, (0, 0, 0, 1.0), 1.0)):
            img = np.clip(r.composite(r.face_layer(op, 1.0, closure), pose, gain), 0, 255).astype(np.uint8)
            gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            # plain and histogram-equalised (as avdetect.faces' opencv backend searches)
            for g in (gray, cv2.equalizeHist(gray)):
                if len(casc.detectMultiScale(g, 1.1, 5, minSize=(size // 6, size // 6))) == 0:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            return ident, light, bg_seed
    raise SynthError(f"no Haar-detectable identity after {tries} draws for identity seed {identity_seed}")


def _smooth_walk(rng: np.random.Generator, n: int, amp: float, n_waves: int = 3) -> np.ndarray:
    t = frames_to_seconds(np.arange(n))
    out = np.zeros(n)
    for _ in range(n_waves):
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(0.05, 0.6) * t + rng.uniform(0, 2 * np.pi))
    return amp * out / n_waves


def _plan_segments(rng: np.random.Generator, words: list[tuple[float, float]], duration: float, n_seg: int) -> list[tuple[int, int]]:
    """Pick 1-3 non-overlapping spans of whole words, 0.2-3 s, as frame ranges [f0, f1)."""
    n_frames = n_frames_for_duration(duration)
    chosen: list[tuple[int, int]] = []
    for _ in range(40):
        if len(chosen) >= n_seg:
            break
        if words:
            i = int(rng.integers(len(words)))
            j = i + int(rng.integers(0, 3))
            j = min(j, len(words) - 1)
            s, e = words[i][0], words[j][1]
            while e - s > 3.0 and j > i:
                j -= 1
                e = words[j][1]
        else:
            s = float(rng.uniform(0, max(0.0, duration - 1.0)))
            e = s + float(rng.uniform(0.3, 1.0))
        f0, f1 = seconds_to_frames_round(s), seconds_to_frames_round(e)
        if f1 - f0 < 5:  # at least 0.2 s
            f1 = f0 + 5
        f1 = min(f1, f0 + 75, n_frames)
        f0 = max(0, min(f0, f1 - 5))
        if any(not (f1 + 2 <= a or f0 >= b + 2) for a, b in chosen):
            continue
        chosen.append((f0, f1))
    return sorted(chosen)


def render(spec: ClipSpec) -> RenderedClip:
    """Render frames, audio and truth for ``spec`` (no encoding)."""
    spec.validate()
    man = spec.manipulation
    seed = spec.seed
    id_seed = spec.identity_seed if spec.identity_seed is not None else seed
    n_frames = n_frames_for_duration(spec.duration)
    duration = frames_to_seconds(n_frames)
    n_samples = frame_to_sample(n_frames)

    ident, light, bg_seed = detectable_identity(id_seed, spec.size, spec.variant)
    renderer = FaceRenderer(ident, np.random.default_rng(bg_seed), light)
    voice = sample_voice(_rng(id_seed, _R_VOICE), f"v{id_seed % 10**8:08d}", spec.variant)
    rw = _rng(seed, _R_WORDS)
    utt = plan_utterance(rw, voice, duration, lead=float(rw.uniform(0.05, 0.4)), tail=float(rw.uniform(0.05, 0.3)))
    audio, tracks = synthesize(utt, voice, rw)
    audio = audio[:n_samples]
    opening, width = mouth_per_frame(tracks, n_frames)

    # head motion, blinks, lighting (shared by real and fake renders)
    rm = _rng(seed, _R_MOTION)
    pose = np.stack([
        _smooth_walk(rm, n_frames, rm.uniform(2, 9) * spec.size / 256),
        _smooth_walk(rm, n_frames, rm.uniform(1, 6) * spec.size / 256),
        _smooth_walk(rm, n_frames, rm.uniform(1, 6)),
        1 + _smooth_walk(rm, n_frames, rm.uniform(0.01, 0.04)),
    ], axis=1)
    closure = np.zeros(n_frames)
    t = float(rm.uniform(0.3, 2.5))
    while t < duration:
        f = seconds_to_frame(t)
        for k, c in enumerate((0.5, 1.0, 1.0, 0.6, 0.2)):
            if f + k < n_frames:
                closure[f + k] = c
        t += float(rm.uniform(1.8, 5.5))
    gain = 1 + _smooth_walk(rm, n_frames, rm.uniform(0.02, 0.1))
    noise_sigma = float(rm.uniform(1.0, 4.0))
    crf = spec.crf if spec.crf is not None else int(rm.integers(20, 31))

    # ---- manipulation -------------------------------------------------------------------
    rman = _rng(seed, _R_MANIP)
    vis_frames = np.zeros(n_frames, bool)
    aud_spans: list[tuple[int, int]] = []
    vis_spans: list[tuple[int, int]] = []
    audio_method = ""
    offset_s = 0.0
    vis_art = aud_art = None
    if man.kind != "real":
        if man.segments is not None:
            spans = [(seconds_to_frames_round(a), seconds_to_frames_round(b)) for a, b in man.segments]
            spans = sorted(spans)
            for k, (a, b) in enumerate(spans):
                if not 0 <= a < b <= n_frames:
                    raise ConfigError(f"segment [{frames_to_seconds(a)}, {frames_to_seconds(b)}] s is empty or outside the clip (0-{duration} s)")
                if k and a < spans[k - 1][1]:
                    raise ConfigError(f"segments overlap at {frames_to_seconds(a)} s")
        elif man.scope == "clip":
            spans = [(0, n_frames)]
        else:
            n_seg = man.n_segments or int(rman.integers(1, 4))
            spans = _plan_segments(rman, utt.words, duration, n_seg)
        if man.kind in ("visual", "both"):
            vis_spans = spans
        if man.kind in ("audio", "both", "offset"):
            aud_spans = spans
        if man.kind in ("audio", "both"):
            audio_method = man.audio_method or str(rman.choice(AUDIO_METHODS if man.kind == "audio" else ("clone", "other_voice")))
            if man.kind == "both" and audio_method == "vocoder":
                audio_method = "clone"  # 'both' re-drives the mouth with new words
        rart = _rng(seed, _R_ART)
        vis_art = art_mod.sample_visual_artefact(rart, spec.variant, man.strength)
        aud_art = art_mod.sample_audio_artefact(rart, spec.variant, man.strength)
        rf = _rng(seed, _R_FAKE)
        fake_audio = audio.copy()
        if man.kind == "offset":
            off = man.offset if man.offset is not None else float(rf.choice([-1, 1]) * rf.uniform(0.2, 0.8))
            d = n_samples_for_duration(abs(off)) * (1 if off >= 0 else -1)
            offset_s = samples_to_seconds(d)
            shifted = np.zeros_like(audio)
            if d >= 0:
                shifted[d:] = audio[:n_samples - d]
            else:
                shifted[:n_samples + d] = audio[-d:]
            for a, b in aud_spans:
                fake_audio[frame_to_sample(a):frame_to_sample(b)] = shifted[frame_to_sample(a):frame_to_sample(b)]
        for k, (a, b) in enumerate(spans):
            seg_dur = frames_to_seconds(b - a)
            s0, s1 = frame_to_sample(a), frame_to_sample(b)
            new_voice: Voice | None = None
            if man.kind == "visual" or (man.kind in ("audio", "both") and audio_method != "vocoder"):
                if audio_method == "other_voice" or man.kind == "visual":
                    new_voice = sample_voice(_rng(seed, _R_FAKE, 100 + k), f"fake{k}", spec.variant)
                else:  # a clone: same voice, slightly off
                    new_voice = Voice(**{**asdict(voice), "f0": voice.f0 * float(rf.uniform(0.94, 1.06)),
                                         "formant_scale": voice.formant_scale * float(rf.uniform(0.96, 1.04)),
                                         "jitter": voice.jitter * 0.5, "voice_id": voice.voice_id + "-clone"})
                fu = plan_utterance(rf, new_voice, seg_dur, lead=0.0, tail=0.0)
                fy, ftr = synthesize(fu, new_voice, rf)
                fy = np.pad(fy, (0, max(0, s1 - s0 - len(fy))))[: s1 - s0]
                if man.kind in ("visual", "both"):
                    fo, fw = mouth_per_frame(ftr, b - a)
                    opening[a:b], width[a:b] = fo, fw
                if man.kind in ("audio", "both"):
                    ref = float(np.sqrt(np.mean(audio[s0:s1] ** 2)))
                    r = float(np.sqrt(np.mean(fy ** 2)))
                    if r > 1e-8 and ref > 1e-4:
                        fy = fy * (ref / r)
                    fake_audio[s0:s1] = art_mod.apply_audio(fy, aud_art, rf)  # TTS/vocoder traces
            elif man.kind in ("audio", "both") and audio_method == "vocoder":
                fake_audio[s0:s1] = art_mod.apply_audio(audio[s0:s1], aud_art, rf)
            if man.kind in ("visual", "both"):
                vis_frames[a:b] = True
        audio = fake_audio

    # ---- frames -------------------------------------------------------------------------
    i = ident
    mask = art_mod.lower_face_mask(spec.size, i.cx, i.cy + i.eye_dy + i.nose_len * 0.75, i.cy + i.face_ry * 0.95,
                                   i.face_rx * 0.78, vis_art.feather if vis_art else 2.0)
    ys, xs = np.nonzero(mask > 1e-3)
    mbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else (0, 0, 1, 1)
    rn = _rng(seed, _R_NOISE)
    # camera noise: crops of a small bank of noise fields at random offsets (cheap per frame)
    pad = 32
    bank = rn.standard_normal((4, spec.size + pad, spec.size + pad, 3), dtype=np.float32) * noise_sigma
    picks = rn.integers(0, [4, pad, pad], size=(n_frames, 3))
    rflick = _rng(seed, _R_ART, 7)
    frames = np.empty((n_frames, spec.size, spec.size, 3), np.uint8)
    for f in range(n_frames):
        face = renderer.face_layer(float(opening[f]), float(width[f]), float(closure[f]))
        if vis_frames[f]:
            art_mod.apply_visual(face, mask, mbox, vis_art, rflick)
        img = renderer.composite(face, tuple(pose[f]), float(gain[f]))
        b, oy, ox = picks[f]
        img += bank[b, oy:oy + spec.size, ox:ox + spec.size]
        np.clip(img, 0, 255, out=img)
        frames[f] = img.astype(np.uint8)

    # room tone under the speech (same in real and fake renders)
    audio = audio + (_rng(seed, _R_NOISE, 1).standard_normal(n_samples) * 10 ** (rm.uniform(-4.0, -3.0))).astype(np.float32)
    audio = np.clip(audio, -1, 1).astype(np.float32)

    def secs(spans):
        return [[round(frames_to_seconds(a), 4), round(frames_to_seconds(b), 4)] for a, b in spans]

    all_spans = sorted(set(vis_spans) | set(aud_spans))
    truth = ClipTruth(
        duration=round(duration, 4), video_frames=n_frames, audio_frames=n_samples, kind=man.kind,
        scope=man.scope if man.kind != "real" else "", visual_fake_segments=secs(vis_spans),
        audio_fake_segments=secs(aud_spans), fake_segments=secs(all_spans), audio_method=audio_method,
        visual_style=vis_art.style if vis_spans and vis_art else "", audio_style=aud_art.style if audio_method and aud_art else "",
        strength=float(man.strength) if man.kind != "real" else 0.0, offset=round(offset_s, 4),
        identity_id=ident.identity_id, voice_id=voice.voice_id, variant=spec.variant,
        words=[[round(a, 4), round(b, 4)] for a, b in utt.words],
    )
    return RenderedClip(frames=frames, audio=audio, truth=truth, mouth_box=mbox, crf=crf)


def encode(clip: RenderedClip, path: str | Path, crf: int | None = None) -> None:
    """Write an mp4 (H.264 25 fps yuv420p, AAC 16 kHz mono) deterministically (one x264 thread).

    ``crf`` defaults to the clip's own drawn quality.
    """
    from avdetect.media import write_video

    write_video(path, clip.frames, clip.audio, crf=clip.crf if crf is None else crf, error=SynthError)


def render_clip(path: str | Path, spec: ClipSpec) -> ClipTruth:
    """Render ``spec`` and write it to ``path`` (mp4). Returns the clip's ground truth."""
    clip = render(spec)
    encode(clip, path)
    logger.debug("wrote %s (%s)", path, clip.truth.modify_type)
    return clip.truth
