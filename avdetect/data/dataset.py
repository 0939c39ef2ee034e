"""Training and evaluation windows from a manifest + preprocessing cache.

:class:`WindowDataset` yields fixed-length windows (``window_frames`` on the 25 Hz grid):

* ``train=True``: one item per clip per epoch, a random window of that clip (start drawn from
  ``(seed, epoch, index)``, so runs repeat exactly), with augmentations;
* ``train=False``: every clip tiled by windows with ``eval_overlap`` frames of overlap (the
  last one aligned to the clip's end), no augmentation; items carry ``clip``/``start`` so the
  windows can be stitched back per clip.

:func:`collate_windows` stacks items and builds the model's
:class:`~avdetect.models.DetectorTargets` (frame labels, boundary bumps, distances, clip and
category labels, sync offset). :class:`EpochSampler` shuffles (optionally class-balanced, with
replacement) and splits the indices over distributed ranks.

**Clip labels come from the manifest.** A window's clip label is its own (a window of a LAV-DF
fake that misses the fake segment is real), except for fakes whose segments are unknown: those
train as fake at clip level with their frame labels masked (``frames_known=False`` in
:meth:`~avdetect.models.DetectorTargets.from_segments`), with a warning that counts them.
FakeAVCeleb fakes without durations (``--no-probe``, a failed probe) first get their whole-clip
segment from the cache's frame count (:func:`complete_segments`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from avdetect.data.cache import FeatureCache
from avdetect.data.manifest import LABEL_UNKNOWN, WHOLE_CLIP_DATASETS, ManifestEntry
from avdetect.errors import DataFormatError
from avdetect.timegrid import frame_to_sample, frames_to_seconds, seconds_to_frames_round
from avdetect.vocab import category_index

logger = logging.getLogger(__name__)


@dataclass
class AugmentConfig:
    """Training augmentations (all off with ``enabled=False``)."""

    enabled: bool = True
    crop_jitter: int = 4  # pixels: the whole window's crops shift by up to this much
    brightness: float = 0.15  # multiplicative, +-
    contrast: float = 0.15  # +-
    colour_prob: float = 0.5
    gain_db: float = 6.0  # audio gain +- dB
    noise_prob: float = 0.3
    noise_snr_db: tuple[float, float] = (20.0, 40.0)
    # Audio delayed by a random 1..av_shift_max frames (target of the sync loss). Frame labels
    # stay those of the content; use 0 on data whose fakes include pure AV offsets (synthetic
    # 'offset' kind), where a shifted real clip would contradict its label.
    av_shift_prob: float = 0.0
    av_shift_max: int = 8


def _frames(segments: list[list[float]]) -> list[tuple[int, int]]:
    out = []
    for s, e in segments:
        a, b = seconds_to_frames_round(float(s)), seconds_to_frames_round(float(e))
        if b <= a:  # a segment shorter than half a frame still marks one frame
            b = a + 1
        out.append((a, b))
    return out


def segments_unknown(e: ManifestEntry) -> bool:
    """A fake without any segment: its frame labels are unknown."""
    return e.label == 1 and not (e.fake_segments or e.visual_segments or e.audio_segments)


def complete_segments(entries: list[ManifestEntry], cache: FeatureCache) -> list[ManifestEntry]:
    """Entries of whole-clip datasets (:data:`~avdetect.data.manifest.WHOLE_CLIP_DATASETS`:
    FakeAVCeleb) that are fake but have no segments (no duration in the manifest) get
    ``[[0, n_frames / 25]]`` for each manipulated modality and that duration, from the cached
    frame count. Other entries are returned as they are (new objects only where changed)."""
    out, filled = [], 0
    for e in entries:
        rec = cache.records.get(e.file)
        if rec is not None and e.dataset in WHOLE_CLIP_DATASETS and segments_unknown(e):
            dur = round(float(frames_to_seconds(rec.n_frames)), 6)
            whole = [[0.0, dur]]
            e = dataclasses.replace(e, duration=dur, fake_segments=whole,
                                    visual_segments=whole if e.modify_video else [],
                                    audio_segments=whole if e.modify_audio else [])
            filled += 1
        out.append(e)
    if filled:
        logger.info("%d whole-clip fakes without a duration got [0, duration] from the cache's frame count", filled)
    return out


class WindowDataset(torch.utils.data.Dataset):
    """Windows of cached clips with their labels (see the module docstring)."""

    def __init__(self, entries: list[ManifestEntry], cache: FeatureCache | str, window_frames: int, *,
                 train: bool = True, augment: AugmentConfig | None = None, use_face: bool = False,
                 eval_overlap: int = 0, seed: int = 0, model_config=None):
        """``model_config`` (the model's ``DetectorConfig``, optional): the cache's crop sizes are
        checked against it (:meth:`FeatureCache.check`)."""
        self.cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
        if model_config is not None:
            self.cache.check(model_config=model_config)
        if use_face and not self.cache.has_faces:
            raise DataFormatError("the model uses face crops but the cache has none (preprocess with --faces)",
                                  self.cache.root)
        unlabelled = [e.file for e in entries if e.label == LABEL_UNKNOWN]
        if unlabelled:
            raise DataFormatError(f"{len(unlabelled)} clips have no label (e.g. {unlabelled[0]!r}, an unlabelled test "
                                  "set): they can be predicted (recipes/evaluate.py), not trained or validated on")
        missing = [e.file for e in entries if e.file not in self.cache]
        if missing:
            logger.warning("%d of %d manifest clips are not in the cache (failed or not preprocessed), e.g. %s",
                           len(missing), len(entries), missing[0])
        self.entries = complete_segments([e for e in entries if e.file in self.cache], self.cache)
        if not self.entries:
            raise DataFormatError("no clip of the manifest is in the cache", self.cache.root)
        unknown = [e.file for e in self.entries if segments_unknown(e)]
        if unknown:
            logger.warning("%d of %d fake clips have no known segments (e.g. %s): they train as fake at clip level, "
                           "their frame, boundary and sync losses masked", len(unknown),
                           sum(e.label == 1 for e in self.entries), unknown[0])
        self.window = int(window_frames)
        self.train = train
        self.augment = augment if augment is not None else AugmentConfig(enabled=train)
        self.use_face = use_face
        self.seed = seed
        self.epoch = 0
        self.tiles: list[tuple[int, int]] = []  # (clip index, start) in eval mode
        if not train:
            from avdetect.inference import window_starts

            step = max(1, self.window - int(eval_overlap))
            for i, e in enumerate(self.entries):
                self.tiles.extend((i, s) for s in window_starts(self.n_frames(i), self.window, step))

    def n_frames(self, clip: int) -> int:
        return self.cache.records[self.entries[clip].file].n_frames

    @property
    def labels(self) -> list[int]:
        return [e.label for e in self.entries]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries) if self.train else len(self.tiles)

    def __getitem__(self, index: int) -> dict:
        if self.train:
            clip = index
            rng = np.random.default_rng([self.seed, self.epoch, index])
            n = self.n_frames(clip)
            start = int(rng.integers(0, max(0, n - self.window) + 1))
        else:
            clip, start = self.tiles[index]
            rng = None
        return self.load(clip, start, rng)

    def load(self, clip: int, start: int, rng: np.random.Generator | None = None) -> dict:
        """Window ``[start, start + window)`` of clip ``clip`` (padded past its end)."""
        e = self.entries[clip]
        aug = self.augment if (rng is not None and self.augment.enabled) else None
        shift = 0
        if aug is not None and aug.av_shift_prob > 0 and rng.random() < aug.av_shift_prob:
            shift = int(rng.integers(1, aug.av_shift_max + 1)) * (1 if rng.random() < 0.5 else -1)
        w = self.cache.read(e.file, start, start + self.window, audio_shift=shift)
        t, n = self.window, len(w.valid)
        mouth = np.zeros((t, *w.mouth.shape[1:]), np.uint8) if w.mouth is not None else None
        if mouth is not None:
            mouth[:n] = w.mouth
        face = None
        if self.use_face and w.face is not None:
            face = np.zeros((t, *w.face.shape[1:]), np.uint8)
            face[:n] = w.face
        vmask = np.zeros(t, bool)
        vmask[:n] = w.valid
        amask = np.zeros(t, bool)
        audio = None
        if w.audio is not None:
            audio = np.zeros(frame_to_sample(t), np.float32)
            audio[:len(w.audio)] = w.audio
            amask[:n] = w.has_audio_frames
        if aug is not None:
            mouth, face, audio = _augment(rng, aug, mouth, face, audio)
        vis = [(s - start, en - start) for s, en in _frames(e.visual_segments)]
        aud = [(s - start + shift, en - start + shift) for s, en in _frames(e.audio_segments)]
        if not e.visual_segments and not e.audio_segments and e.fake_segments:
            # only a fused list is known: count it for both modalities that were modified
            fused = [(s - start, en - start) for s, en in _frames(e.fake_segments)]
            vis = fused if e.modify_video or not e.modify_audio else []
            aud = fused if e.modify_audio else []
        item = {"mouth": mouth, "face": face, "audio": audio, "visual_mask": vmask, "audio_mask": amask,
                "length": n, "visual_segments": vis, "audio_segments": aud, "sync_offset": shift,
                "clip": clip, "start": start}
        if segments_unknown(e):  # fake, but where is unknown: clip label only, frame labels masked
            item.update(clip_label=1.0, frames_known=False,
                        category=category_index(e.modify_video, e.modify_audio) if (e.modify_video or e.modify_audio)
                        else -1)
        return item


def _augment(rng: np.random.Generator, aug: AugmentConfig, mouth, face, audio):
    def jitter_colour(x: np.ndarray, dx: int, dy: int, colour: tuple[float, float] | None) -> np.ndarray:
        if dx or dy:
            x = np.roll(x, (dy, dx), axis=(1, 2))
        if colour is not None:
            gain, contrast = colour
            f = x.astype(np.float32)
            mean = f.mean(axis=(1, 2, 3), keepdims=True)
            f = (f - mean) * contrast + mean * gain
            x = np.clip(f, 0, 255).astype(np.uint8)
        return x

    j = aug.crop_jitter
    dx, dy = (int(rng.integers(-j, j + 1)), int(rng.integers(-j, j + 1))) if j > 0 else (0, 0)
    colour = None
    if rng.random() < aug.colour_prob:
        colour = (1.0 + rng.uniform(-aug.brightness, aug.brightness), 1.0 + rng.uniform(-aug.contrast, aug.contrast))
    if mouth is not None:
        mouth = jitter_colour(mouth, dx, dy, colour)
    if face is not None:
        face = jitter_colour(face, dx, dy, colour)
    if audio is not None:
        audio = audio * np.float32(10 ** (rng.uniform(-aug.gain_db, aug.gain_db) / 20))
        if rng.random() < aug.noise_prob:
            power = float(np.mean(audio ** 2)) + 1e-10
            snr = rng.uniform(*aug.noise_snr_db)
            audio = audio + rng.normal(0, math.sqrt(power / 10 ** (snr / 10)), audio.shape).astype(np.float32)
        audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    return mouth, face, audio


def collate_windows(items: list[dict], sigma: float = 1.0) -> dict:
    """Stack window items into model inputs (``mouth`` (B, T, 3, H, W) uint8, ``audio`` (B, T*640),
    masks) and ``targets`` (:class:`~avdetect.models.DetectorTargets`)."""
    from avdetect.models import DetectorTargets

    t = len(items[0]["visual_mask"])
    out: dict = {}
    for key in ("mouth", "face", "audio"):
        present = [it[key] for it in items if it[key] is not None]
        if not present:
            out[key] = None
            continue
        # a clip without this stream in a batch with it: zeros, masked out by its mask
        arr = np.stack([it[key] if it[key] is not None else np.zeros_like(present[0]) for it in items])
        out[key] = torch.from_numpy(arr)
        if key != "audio":
            out[key] = out[key].permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W)
    out["visual_mask"] = torch.from_numpy(np.stack([it["visual_mask"] for it in items]))  # (B, T)
    out["audio_mask"] = torch.from_numpy(np.stack([it["audio_mask"] for it in items]))  # (B, T)
    known = [it.get("frames_known", True) for it in items]
    # clips without segments: the category from the manifest; the others': what their windows hold
    cats = None if all(known) else [it.get("category") for it in items]
    out["targets"] = DetectorTargets.from_segments(
        t, [it["visual_segments"] for it in items], [it["audio_segments"] for it in items], category=cats,
        lengths=[it["length"] for it in items], sync_offset=[it["sync_offset"] for it in items],
        clip_label=[it.get("clip_label") for it in items], frames_known=known, sigma=sigma)
    out["clip"] = torch.tensor([it["clip"] for it in items])
    out["start"] = torch.tensor([it["start"] for it in items])
    return out


class EpochSampler(torch.utils.data.Sampler):
    """Per-epoch shuffled indices for one of ``world`` ranks.

    ``balanced=True`` draws ``len(labels)`` indices with replacement, each class (label) with
    equal total probability; otherwise a permutation. Every rank draws the same global list
    (seeded by ``(seed, epoch)``) and takes every ``world``-th item, padded so all ranks get the
    same count (DDP needs equal step counts).
    """

    def __init__(self, labels: list[int], *, balanced: bool = False, rank: int = 0, world: int = 1, seed: int = 0):
        self.labels = np.asarray(labels)
        self.balanced = balanced
        self.rank, self.world, self.seed = rank, world, seed
        self.epoch = 0
        self.skip = 0
        self.per_rank = int(math.ceil(len(self.labels) / world))

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch; ``skip`` drops this rank's first indices (exact resume mid-epoch)."""
        self.epoch = int(epoch)
        self.skip = int(skip)

    def __len__(self) -> int:
        return max(0, self.per_rank - self.skip)

    def __iter__(self):
        n = len(self.labels)
        rng = np.random.default_rng([self.seed, self.epoch, 0x5A])
        if self.balanced:
            classes, counts = np.unique(self.labels, return_counts=True)
            w = 1.0 / counts[np.searchsorted(classes, self.labels)]
            idx = rng.choice(n, size=n, replace=True, p=w / w.sum())
        else:
            idx = rng.permutation(n)
        total = self.per_rank * self.world
        if total > n:
            idx = np.concatenate([idx, idx[: total - n]])
        return iter(idx[self.rank:total:self.world][self.skip:].tolist())
