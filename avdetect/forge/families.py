"""Forgery families and the one entry point that applies them: :func:`forge_clip`.

A family says which streams it changes and how; its parameters are drawn from the random
generator it is given, so a forgery is reproducible from a seed, and every parameter used is
returned in :class:`ForgeryRecord` (written into the metadata).

| family | stream | what |
|---|---|---|
| ``face_blend`` | video | self-blended face over the span (:func:`ops.self_blend`) |
| ``mouth_rerender`` | video | lower face from other times of the clip, generator-like path (:func:`ops.mouth_rerender`) |
| ``voice_swap`` | audio | span replaced by another speaker's speech (level and room matched) |
| ``voice_tts`` | audio | span replaced by text-to-speech (espeak-ng; only where installed) |
| ``voice_vocoder`` | audio | the same words resynthesised by Griffin-Lim |
| ``av_shift`` | audio | the span's audio shifted 0.2-1.0 s against the lips |
| ``both`` | video + audio | ``mouth_rerender`` plus one of the voice families over the same span (LAV-DF style) |
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avdetect.errors import ConfigError
from avdetect.forge import ops, tts
from avdetect.timegrid import (frame_to_sample, frames_to_seconds, samples_to_frames, samples_to_seconds,
                               seconds_to_frame, seconds_to_frames_round)

VISUAL_FAMILIES = ("face_blend", "mouth_rerender")
AUDIO_FAMILIES = ("voice_swap", "voice_tts", "voice_vocoder", "av_shift")
FAMILIES = VISUAL_FAMILIES + AUDIO_FAMILIES + ("both",)
#: Voice families ``both`` draws from (in this order of preference when one is unavailable).
BOTH_VOICES = ("voice_swap", "voice_tts", "voice_vocoder")


@dataclass
class ForgeryRecord:
    """What was done: family, span (frames on the 25 Hz grid, half-open), streams, parameters."""

    family: str
    start_frame: int
    end_frame: int
    modify_video: bool
    modify_audio: bool
    params: dict = field(default_factory=dict)
    donor: str | None = None  # another clip whose speech was inserted

    @property
    def span_s(self) -> list[float]:
        return [round(frames_to_seconds(self.start_frame), 4), round(frames_to_seconds(self.end_frame), 4)]

    @property
    def visual_segments(self) -> list[list[float]]:
        return [self.span_s] if self.modify_video else []

    @property
    def audio_segments(self) -> list[list[float]]:
        return [self.span_s] if self.modify_audio else []

    def to_dict(self) -> dict:
        return {"family": self.family, "start_s": self.span_s[0], "end_s": self.span_s[1],
                "modify_video": self.modify_video, "modify_audio": self.modify_audio, "donor": self.donor,
                "params": self.params}


def check_families(names) -> tuple[str, ...]:
    names = tuple(names)
    bad = [n for n in names if n not in FAMILIES]
    if bad or not names:
        raise ConfigError(f"unknown forgery family {bad or names!r}; known: {', '.join(FAMILIES)}")
    return names


def usable_families(names, have_donors: bool) -> tuple[str, ...]:
    """``names`` less the families that cannot run here (no TTS program, no donor speech)."""
    out = []
    for n in check_families(names):
        if n == "voice_tts" and not tts.available():
            continue
        if n == "voice_swap" and not have_donors:
            continue
        out.append(n)
    return tuple(out)


def pick_span(n_frames: int, rng: np.random.Generator, min_s: float = 0.5, max_s: float = 2.5,
              margin_s: float = 0.3) -> tuple[int, int]:
    """A span of ``min_s``-``max_s`` seconds inside ``[margin, n - margin)`` (shorter clips: what fits)."""
    margin = seconds_to_frames_round(margin_s)
    room = max(1, n_frames - 2 * margin)
    lo, hi = seconds_to_frames_round(min_s), seconds_to_frames_round(max_s)
    length = int(np.clip(rng.integers(lo, hi + 1), 1, room))
    a = margin + int(rng.integers(0, room - length + 1))
    return a, min(n_frames, a + length)


def donor_indices(n_frames: int, a: int, b: int, rng: np.random.Generator, valid: np.ndarray | None = None) -> np.ndarray:
    """Frames of the same clip whose lower face replaces frames ``[a, b)``: a block at least
    0.6 s away in time (lips then follow other words); played backwards where no such block fits."""
    length = b - a
    gap = seconds_to_frame(0.6)
    starts = [s for s in range(0, n_frames - length + 1) if s + length <= a - gap or s >= b + gap]
    if valid is not None:
        starts = [s for s in starts if valid[s:s + length].mean() > 0.9] or starts
    if starts:
        s = int(rng.choice(starts))
        return np.arange(s, s + length)
    return np.arange(b - 1, a - 1, -1)  # too short a clip: the span's own frames reversed


def _voice(name: str, wave: np.ndarray, sa: int, sb: int, rng: np.random.Generator,
           donor_wave: np.ndarray | None, context: int) -> tuple[np.ndarray, dict]:
    n = sb - sa
    if name == "voice_swap":
        if donor_wave is None or len(donor_wave) == 0:
            raise ConfigError("voice_swap needs donor speech from another speaker")
        off = int(rng.integers(0, max(1, len(donor_wave) - n + 1)))
        sp = ops.SpliceParams.sample(rng)
        return ops.splice(wave, sa, sb, donor_wave[off: off + n], sp, rng), {**ops.params_dict(sp), "donor_offset_s": samples_to_seconds(off)}
    if name == "voice_tts":
        y, info = tts.speech_for(n, rng)
        sp = ops.SpliceParams.sample(rng)
        return ops.splice(wave, sa, sb, y, sp, rng), {**ops.params_dict(sp), **{f"tts.{k}": v for k, v in info.items()}}
    if name == "voice_vocoder":
        n_iter = int(rng.integers(8, 40))
        pad = min(sa, 2048)
        seg = ops.griffin_lim(wave[sa - pad: sb], n_iter=n_iter, seed=int(rng.integers(1 << 31)))[pad:]
        sp = ops.SpliceParams(gain_db=float(rng.uniform(-1.0, 1.0)), match_floor=False)
        return ops.splice(wave, sa, sb, seg, sp, rng), {"griffin_lim.n_iter": n_iter, **ops.params_dict(sp)}
    if name == "av_shift":
        lim = max(1, min(seconds_to_frame(1.0), samples_to_frames(context) if context else seconds_to_frame(1.0)))
        frames = int(rng.integers(min(5, lim), lim + 1)) * (1 if rng.random() < 0.5 else -1)
        return ops.shift_span(wave, sa, sb, frame_to_sample(frames)), {"shift_s": frames_to_seconds(frames)}
    raise ConfigError(f"not a voice family: {name}")


def forge_clip(family: str, frames: np.ndarray | None, boxes: np.ndarray | None, valid: np.ndarray | None,
               wave: np.ndarray | None, span: tuple[int, int], rng: np.random.Generator, *,
               donor_frames: np.ndarray | None = None, donor_boxes: np.ndarray | None = None,
               donor_wave: np.ndarray | None = None, donor_name: str | None = None,
               audio_context: int = 0, strength: float | None = None) -> tuple[np.ndarray | None, np.ndarray | None, ForgeryRecord]:
    """Apply ``family`` over frames ``span = (a, b)`` and return ``(frames, wave, record)``.

    frames: (T, H, W, 3) uint8 (whole frames or mouth crops) with face ``boxes`` (T, 4) in the
    same pixels and ``valid`` (T,) (frames without a face are left alone); wave: 16 kHz mono
    float32 covering the same frames, preceded and followed by ``audio_context`` samples (so a
    shifted span can draw on audio outside the frames; the frame span ``[a, b)`` is samples
    ``[context + a*640, context + b*640)``). donor_frames / donor_boxes: the frames whose lower
    face replaces the span (``mouth_rerender``, ``both``; one per span frame; default: other
    times of ``frames`` itself). donor_wave: another speaker's speech (``voice_swap``).
    The inputs are not modified.
    """
    a, b = int(span[0]), int(span[1])
    if b <= a:
        raise ConfigError(f"empty forgery span [{a}, {b})")
    strength = float(rng.uniform(0.4, 1.0)) if strength is None else float(strength)
    params: dict = {"strength": strength}
    out_frames, out_wave = frames, wave
    modify_video = modify_audio = False
    voice = None
    if family == "both":
        options = [v for v in BOTH_VOICES if (v != "voice_tts" or tts.available()) and (v != "voice_swap" or donor_wave is not None)]
        voice = str(rng.choice(options))
        params["voice"] = voice
    if family in ("face_blend", "mouth_rerender", "both"):
        if frames is None or boxes is None:
            raise ConfigError(f"{family} needs video frames with face boxes")
        idx = np.arange(a, b)
        if valid is not None:
            idx = idx[np.asarray(valid)[a:b].astype(bool)]
        if family == "face_blend":
            jit, hull = ops.BlendJitter.sample(rng, strength), ops.HullShape.sample(rng)
            out_frames = ops.self_blend(frames, boxes, idx, jit, hull)
            params.update(ops.params_dict(jit, hull))
        else:
            if donor_frames is None:
                src = donor_indices(len(frames), a, b, rng, valid)
                donor_frames, donor_boxes = frames[src], boxes[src]
                params["donor_frames"] = [int(src[0]), int(src[-1])]
            keep = idx - a
            path = ops.RenderPath.sample(rng)
            hull = ops.HullShape.sample(rng, cx=0.5, cy=0.55, rx=0.4, ry=0.36, deform=0.1)
            out_frames = ops.mouth_rerender(frames, boxes, idx, donor_frames[keep], donor_boxes[keep], path, hull)
            params.update(ops.params_dict(path, hull))
        modify_video = True
    if family in AUDIO_FAMILIES or voice is not None:
        if wave is None:
            raise ConfigError(f"{family} needs audio")
        sa, sb = audio_context + frame_to_sample(a), audio_context + frame_to_sample(b)
        out_wave, p = _voice(voice or family, wave, sa, sb, rng, donor_wave, audio_context)
        params.update(p)
        modify_audio = True
    donor = donor_name if (family == "voice_swap" or voice == "voice_swap") else None
    return out_frames, out_wave, ForgeryRecord(family, a, b, modify_video, modify_audio, params, donor)
