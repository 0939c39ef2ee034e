"""Generate a synthetic benchmark folder with LAV-DF and AV-Deepfake1M style metadata.

Layout of ``out_dir``::

    train/000000.mp4 ... dev/... test/...
    metadata.json            LAV-DF form, every clip
    train_metadata.json      AV-Deepfake1M form, one file per split (dev is written as 'val',
    val_metadata.json        the name AV-Deepfake1M uses for its validation split)
    test_metadata.json
    synth_info.json          generator settings and per-clip details (kind, styles, strength,
                             identity, voice, words) that neither public format has room for

Each clip is rendered from a seed derived from (seed, index) only, so clips can be made in
any order, in parallel processes, and come out the same.
"""
from __future__ import annotations

import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avdetect.errors import ConfigError
from avdetect.synth.clip import VARIANTS, ClipSpec, ClipTruth, Manipulation, render_clip
from avdetect.timegrid import frames_to_seconds, n_frames_for_duration
from avdetect.vocab import MODIFY_TYPES

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
AV1M_SPLIT_NAME = {"train": "train", "dev": "val", "test": "test"}
# difficulty -> artefact strength range
DIFFICULTY = {"easy": (0.7, 1.0), "medium": (0.4, 0.8), "hard": (0.15, 0.45), "mixed": (0.15, 1.0)}
FAKE_KINDS = ("visual", "audio", "both", "offset")
FAKE_KIND_WEIGHTS = (0.3, 0.3, 0.3, 0.1)


@dataclass
class SynthConfig:
    """Settings of one generated benchmark (all that, with ``seed``, determines its content)."""

    n: int = 100
    seed: int = 0
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    difficulty: str = "medium"
    variant: str = "default"
    real_share: float = 0.25
    clip_share: float = 0.2  # share of fakes manipulated over the whole clip (FakeAVCeleb style)
    min_duration: float = 4.0
    max_duration: float = 6.0
    size: int = 256
    clips_per_identity: int = 5
    kinds: tuple[str, ...] = field(default_factory=lambda: FAKE_KINDS)

    def validate(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.n < 1:
            raise ConfigError(f"n must be >= 1, got {self.n}")
        if len(self.splits) != 3 or any(f < 0 for f in self.splits) or not math.isclose(sum(self.splits), 1.0, abs_tol=1e-6):
            raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, got {self.splits}")
        if self.difficulty not in DIFFICULTY:
            raise ConfigError(f"unknown difficulty {self.difficulty!r} (expected one of {', '.join(DIFFICULTY)})")
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r} (expected default or holdout)")
        if not 0.0 <= self.real_share <= 1.0 or not 0.0 <= self.clip_share <= 1.0:
            raise ConfigError("real_share and clip_share must be in [0, 1]")
        if not 1.0 <= self.min_duration <= self.max_duration <= 60.0:
            raise ConfigError(f"durations must satisfy 1 <= min <= max <= 60, got {self.min_duration}, {self.max_duration}")
        bad = [k for k in self.kinds if k not in FAKE_KINDS]
        if bad or not self.kinds:
            raise ConfigError(f"kinds must be a non-empty subset of {', '.join(FAKE_KINDS)}, got {self.kinds}")


def _split_counts(n: int, fr: tuple[float, float, float]) -> list[int]:
    counts = [int(math.floor(n * f)) for f in fr]
    rest = n - sum(counts)
    order = sorted(range(3), key=lambda i: (n * fr[i] - counts[i]), reverse=True)
    for i in order[:rest]:
        counts[i] += 1
    return counts


def plan(cfg: SynthConfig) -> list[tuple[str, ClipSpec]]:
    """Decide every clip's file name and spec (cheap; no rendering)."""
    cfg.validate()
    counts = _split_counts(cfg.n, cfg.splits)
    split_of = np.repeat(np.arange(3), counts)
    split_of = np.random.default_rng([cfg.seed, 0xA11]).permutation(split_of)
    v_tag = VARIANTS.index(cfg.variant)
    lo, hi = DIFFICULTY[cfg.difficulty]
    kinds = list(cfg.kinds)
    w = np.array([FAKE_KIND_WEIGHTS[FAKE_KINDS.index(k)] for k in kinds])
    w = w / w.sum()
    out = []
    for index in range(cfg.n):
        split = SPLITS[int(split_of[index])]
        rng = np.random.default_rng([cfg.seed, index, 0x5EC])
        clip_seed = int(np.random.SeedSequence([cfg.seed, index, v_tag]).generate_state(1)[0])
        # identities: a pool per split (disjoint across splits and variants), a few clips each
        pool = max(1, int(math.ceil(counts[int(split_of[index])] / cfg.clips_per_identity)))
        id_seed = int(np.random.SeedSequence([cfg.seed, v_tag, int(split_of[index]), int(rng.integers(pool)), 0x1D]).generate_state(1)[0])
        if rng.random() < cfg.real_share:
            man = Manipulation(kind="real")
        else:
            kind = str(rng.choice(kinds, p=w))
            scope = "clip" if rng.random() < cfg.clip_share else "segments"
            man = Manipulation(kind=kind, scope=scope, strength=float(rng.uniform(lo, hi)))
        dur = float(rng.uniform(cfg.min_duration, cfg.max_duration)) if cfg.max_duration > cfg.min_duration else cfg.min_duration
        spec = ClipSpec(seed=clip_seed, duration=frames_to_seconds(n_frames_for_duration(dur)), size=cfg.size, variant=cfg.variant,
                        identity_seed=id_seed, manipulation=man)
        out.append((f"{split}/{index:06d}.mp4", spec))
    return out


def lavdf_entry(file: str, split: str, t: ClipTruth) -> dict:
    """One LAV-DF ``metadata.json`` record."""
    return {
        "file": file,
        "split": split,
        "n_fakes": len(t.fake_segments),
        "fake_periods": t.fake_segments,
        "duration": t.duration,
        "original": None,
        "modify_video": t.modify_video,
        "modify_audio": t.modify_audio,
        "video_frames": t.video_frames,
        "audio_channels": 1,
        "audio_frames": t.audio_frames,
    }


def av1m_entry(file: str, split: str, t: ClipTruth) -> dict:
    """One AV-Deepfake1M ``{split}_metadata.json`` record."""
    return {
        "file": file,
        "original": None,
        "split": AV1M_SPLIT_NAME[split],
        "modify_type": t.modify_type,
        "audio_model": f"synth-{t.audio_method}" if t.audio_method else ("synth-offset" if t.kind == "offset" else ""),
        "fake_segments": t.fake_segments,
        "audio_fake_segments": t.audio_fake_segments,
        "visual_fake_segments": t.visual_fake_segments,
        "video_frames": t.video_frames,
        "audio_frames": t.audio_frames,
    }


def _work(item: tuple[str, str, ClipSpec]) -> tuple[str, dict]:
    file, out_dir, spec = item
    truth = render_clip(os.path.join(out_dir, file), spec)
    return file, truth.to_dict()


def generate(out_dir: str | Path, n: int = 100, seed: int = 0, *, workers: int = 1, quiet: bool = True, **kwargs) -> dict:
    """Render ``n`` clips into ``out_dir`` and write the metadata files. Returns a summary dict.

    ``kwargs`` are :class:`SynthConfig` fields (splits, difficulty, variant, real_share, ...).
    """
    cfg = SynthConfig(n=n, seed=seed, **kwargs)
    items = plan(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(f, str(out), s) for f, s in items]
    results: dict[str, dict] = {}
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="synth", unit="clip", disable=quiet)
    if workers <= 1:
        for job in jobs:
            f, d = _work(job)
            results[f] = d
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for f, d in ex.map(_work, jobs, chunksize=1):
                results[f] = d
                bar.update()
    bar.close()

    lavdf, av1m, info = [], {s: [] for s in SPLITS}, []
    for file, spec in items:
        split = file.split("/", 1)[0]
        t = ClipTruth(**{k: v for k, v in results[file].items() if k in ClipTruth.__dataclass_fields__})
        lavdf.append(lavdf_entry(file, split, t))
        av1m[split].append(av1m_entry(file, split, t))
        info.append({"file": file, "seed": spec.seed, "identity_seed": spec.identity_seed, **results[file]})
    _write_json(out / "metadata.json", lavdf)
    for split in SPLITS:
        _write_json(out / f"{AV1M_SPLIT_NAME[split]}_metadata.json", av1m[split])
    cfg_d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()}
    _write_json(out / "synth_info.json", {"generator": "avdetect.synth", "config": cfg_d, "clips": info})
    summary = {
        "out_dir": str(out), "n": len(items),
        "splits": {s: len(av1m[s]) for s in SPLITS},
        "modify_type": {k: sum(1 for s in SPLITS for e in av1m[s] if e["modify_type"] == k)
                        for k in MODIFY_TYPES},
    }
    logger.info("generated %d clips in %s", len(items), out)
    return summary


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
