"""Datasets for training and evaluation: manifests, the preprocessing cache, windows.

    from avdetect.data import build_manifest, read_manifest, preprocess, FeatureCache, WindowDataset
    entries = build_manifest("lavdf", "/data/LAV-DF")          # list[ManifestEntry]
    preprocess(entries, "cache/lavdf", workers=8)               # decode + face track once
    ds = WindowDataset(entries, FeatureCache("cache/lavdf"), window_frames=100)

Modules: :mod:`~avdetect.data.formats` (the datasets' metadata files: LAV-DF, AV-Deepfake1M,
FakeAVCeleb, prediction files), :mod:`~avdetect.data.manifest` (schema, builders),
:mod:`~avdetect.data.cache` (preprocessing shards), :mod:`~avdetect.data.dataset` (windows,
targets, sampler), :mod:`~avdetect.data.forgery` (windows forged afresh from real clips),
:mod:`~avdetect.data.predict` (the inference engine over cached clips -> proposals, clip
scores, metrics).
"""
from __future__ import annotations

from avdetect.data.cache import FeatureCache, preprocess
from avdetect.data.manifest import BUILDERS, ManifestEntry, read_manifest, write_manifest


def build_manifest(dataset: str, root, **kwargs) -> list[ManifestEntry]:
    """Entries of ``dataset`` (lavdf, av1m, fakeavceleb, synthetic) found under ``root``."""
    from avdetect.errors import ConfigError

    if dataset not in BUILDERS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[dataset](root, **kwargs)


def __getattr__(name):  # torch-dependent names load lazily
    if name in ("WindowDataset", "AugmentConfig", "EpochSampler", "collate_windows"):
        from avdetect.data import dataset

        return getattr(dataset, name)
    raise AttributeError(name)


__all__ = ["AugmentConfig", "EpochSampler", "FeatureCache", "ManifestEntry", "WindowDataset", "build_manifest",
           "collate_windows", "preprocess", "read_manifest", "write_manifest"]
