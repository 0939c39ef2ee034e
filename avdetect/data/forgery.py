"""Training windows forged afresh every step from cached real clips.

:class:`ForgeryWindowDataset` reads a random window of a real clip from the preprocessing cache
(mouth crops and audio) and, with probability ``1 - real_prob``, applies one forgery family of
:mod:`avdetect.forge` over a random span of it (sometimes the whole window), drawn from
``(seed, epoch, index)``: every epoch sees new forgeries of the same footage, and every real
window is also a real negative. The crops are forged with the same operations that
``avdetect forge`` applies to whole frames, placed by the face box the crop rule implies
(:func:`avdetect.forge.ops.face_box_in_mouth_crop`). Whole-window compression and resampling
(:func:`avdetect.forge.ops.degrade`) hit real and forged windows alike.

Entries that are already fake (a forged or benchmark clip with its own segments) keep their
labels and are not forged again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from avdetect.data.dataset import AugmentConfig, WindowDataset, _augment
from avdetect.errors import ConfigError
from avdetect.forge import ops
from avdetect.forge.families import FAMILIES, donor_indices, forge_clip, pick_span, usable_families
from avdetect.timegrid import frame_to_sample, n_frames_for_duration
from avdetect.vocab import MOUTH_SIZE

logger = logging.getLogger(__name__)

AUDIO_CONTEXT_FRAMES = n_frames_for_duration(1.0)  # audio read either side of a window (span shifts draw on it)


@dataclass
class ForgeConfig:
    """On-the-fly forgeries of real training windows (off unless ``enabled``)."""

    enabled: bool = False
    real_prob: float = 0.4  # windows left untouched
    families: tuple[str, ...] = FAMILIES
    weights: tuple[float, ...] | None = None  # per family (None: equal)
    min_span_s: float = 0.4
    max_span_s: float = 3.0
    whole_window_prob: float = 0.15  # a forgery over the whole window (clip-level fakes)
    degrade_prob: float = 0.5  # whole-window JPEG / resampling, real and forged alike
    repeats: int = 1  # windows per clip per epoch (small corpora: more forgeries per epoch)
    jpeg: tuple[int, int] = (30, 95)
    resolution: tuple[float, float] = (0.5, 1.0)

    def validate(self) -> None:
        if not 0.0 <= self.real_prob <= 1.0 or not 0.0 <= self.whole_window_prob <= 1.0:
            raise ConfigError("forge.real_prob and forge.whole_window_prob must be in [0, 1]")
        if self.weights is not None and len(self.weights) != len(self.families):
            raise ConfigError("forge.weights needs one weight per family")
        if self.repeats < 1:
            raise ConfigError("forge.repeats must be >= 1")
        if not 0 < self.min_span_s <= self.max_span_s:
            raise ConfigError("forge: need 0 < min_span_s <= max_span_s")


class ForgeryWindowDataset(WindowDataset):
    """:class:`WindowDataset` (training mode) whose real windows are forged on the fly."""

    def __init__(self, entries, cache, window_frames: int, *, forge: ForgeConfig, augment: AugmentConfig | None = None,
                 use_face: bool = False, seed: int = 0, model_config=None):
        super().__init__(entries, cache, window_frames, train=True, augment=augment, use_face=use_face, seed=seed,
                         model_config=model_config)
        forge.validate()
        if use_face:
            raise ConfigError("on-the-fly forgeries are made on mouth crops; models with use_face are not supported yet")
        self.forge = forge
        subjects = [e.subject or e.file for e in self.entries]
        self._donors = {s: [i for i, o in enumerate(subjects) if o != s and self._has_audio(i)] for s in set(subjects)}
        have_donors = any(self._donors.values())
        fams = usable_families(forge.families, have_donors=have_donors)
        skipped = sorted(set(forge.families) - set(fams))
        if skipped:
            logger.warning("forgery families %s cannot run here (no espeak-ng / no donor speech) and are skipped", skipped)
        if not fams:
            raise ConfigError("no forgery family can run here")
        w = np.array([forge.weights[forge.families.index(f)] for f in fams] if forge.weights else [1.0] * len(fams), float)
        self.families, self.family_p = fams, w / w.sum()
        self.box = ops.face_box_in_mouth_crop(self.cache.mouth_size or MOUTH_SIZE)

    def __len__(self) -> int:
        return len(self.entries) * self.forge.repeats

    @property
    def labels(self) -> list[int]:
        return [e.label for e in self.entries] * self.forge.repeats

    def __getitem__(self, index: int) -> dict:
        clip = index % len(self.entries)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        start = int(rng.integers(0, max(0, self.n_frames(clip) - self.window) + 1))
        return self.load(clip, start, rng)

    def _has_audio(self, clip: int) -> bool:
        return bool(self.cache.records[self.entries[clip].file].has_audio)

    def load(self, clip: int, start: int, rng: np.random.Generator | None = None) -> dict:
        e = self.entries[clip]
        if rng is None or e.label == 1 or rng.random() < self.forge.real_prob:
            item = super().load(clip, start, rng)
            if rng is not None and item["mouth"] is not None:
                item["mouth"] = self._degrade(item["mouth"], rng)
            item["family"] = "real" if e.label == 0 else "given"
            return item
        return self._forged(clip, start, rng)

    def _degrade(self, mouth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.forge.degrade_prob:
            return mouth
        jpeg = int(rng.integers(self.forge.jpeg[0], self.forge.jpeg[1] + 1)) if rng.random() < 0.7 else None
        res = float(rng.uniform(*self.forge.resolution)) if rng.random() < 0.5 else 1.0
        return ops.degrade(mouth, jpeg, res)

    def _forged(self, clip: int, start: int, rng: np.random.Generator) -> dict:
        e = self.entries[clip]
        t = self.window
        n_clip = self.n_frames(clip)
        ctx = AUDIO_CONTEXT_FRAMES
        lo, hi = max(0, start - ctx), min(n_clip, start + t + ctx)
        w = self.cache.read(e.file, lo, hi)
        a0 = start - lo  # window start inside the read
        n = min(t, len(w.valid) - a0)
        mouth = np.zeros((t, *w.mouth.shape[1:]), np.uint8) if w.mouth is not None else None
        vmask = np.zeros(t, bool)
        if mouth is not None:
            mouth[:n] = w.mouth[a0:a0 + n]
            vmask[:n] = w.valid[a0:a0 + n]
        wave = None
        amask = np.zeros(t, bool)
        if w.audio is not None:
            # the window's audio with AUDIO_CONTEXT_FRAMES of context each side (zeros past the clip)
            wave = np.zeros(frame_to_sample(t + 2 * ctx), np.float32)
            off = frame_to_sample(ctx - a0)
            wave[off:off + len(w.audio)] = w.audio
            amask[:n] = w.has_audio_frames[a0:a0 + n]
        fam = str(rng.choice(self.families, p=self.family_p))
        if mouth is None and fam in ("face_blend", "mouth_rerender", "both"):
            fam = "voice_vocoder"
        if wave is None and fam not in ("face_blend", "mouth_rerender"):
            fam = "face_blend"
        if rng.random() < self.forge.whole_window_prob:
            span = (0, n)
        else:
            span = pick_span(n, rng, self.forge.min_span_s, self.forge.max_span_s, margin_s=0.0)
        kw: dict = {"audio_context": frame_to_sample(ctx)}
        if fam in ("mouth_rerender", "both") and mouth is not None:
            length = span[1] - span[0]
            src = donor_indices(n_clip, start + span[0], start + span[1], rng)
            d = self.cache.read(e.file, int(src.min()), int(src.max()) + 1)
            donor = d.mouth[src - int(src.min())]
            kw.update(donor_frames=donor[:length], donor_boxes=np.repeat(self.box[None], length, 0))
        if fam in ("voice_swap", "both"):
            pool = self._donors.get(e.subject or e.file) or []
            if pool:
                j = int(rng.choice(pool))
                m = self.n_frames(j)
                length = span[1] - span[0]
                ds = int(rng.integers(0, max(1, m - length) + 1))
                kw.update(donor_wave=self.cache.read(self.entries[j].file, ds, ds + length).audio,
                          donor_name=self.entries[j].file)
        boxes = np.repeat(self.box[None], t, 0)
        mouth2, wave2, rec = forge_clip(fam, mouth, boxes if mouth is not None else None, vmask, wave, span, rng, **kw)
        if mouth2 is not None:
            mouth2 = self._degrade(mouth2, rng)
        audio = None
        if wave2 is not None:
            audio = wave2[frame_to_sample(ctx):frame_to_sample(ctx + t)].copy()
            audio[frame_to_sample(n):] = 0.0
        aug = self.augment if self.augment.enabled else None
        face = None
        if aug is not None:
            mouth2, face, audio = _augment(rng, aug, mouth2, face, audio)
        seg = [(rec.start_frame, rec.end_frame)]
        return {"mouth": mouth2, "face": None, "audio": audio, "visual_mask": vmask, "audio_mask": amask, "length": n,
                "visual_segments": seg if rec.modify_video else [], "audio_segments": seg if rec.modify_audio else [],
                "sync_offset": 0, "clip": clip, "start": start, "family": rec.family}

