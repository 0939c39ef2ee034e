"""Named model configurations: ``create_model(name, **overrides)`` and ``list_models()``.

* ``avdetect-tiny``: well under 1M parameters, for tests and smoke runs.
* ``avdetect-small``: a few million parameters; trains on a CPU in minutes on synthetic data.
* ``avdetect-base``: a wav2vec2-base-sized audio encoder (12 x 768; pass
  ``audio={"pretrained_dir": "/path/to/wav2vec2-base"}`` to start from local pretrained
  weights), face + mouth video transformer at full crop resolution; GPU scale.
"""
from __future__ import annotations

from typing import Any, Callable

from avdetect.errors import ConfigError
from avdetect.models.config import (AudioConfig, DetectorConfig, FusionConfig, SyncConfig, VisualConfig,
                                    merge_config)
from avdetect.models.detector import AVDetector

_REGISTRY: dict[str, Callable[[], DetectorConfig]] = {}


def register_model(name: str):
    """Decorator: register a zero-argument function returning a :class:`DetectorConfig`."""

    def wrap(fn: Callable[[], DetectorConfig]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_REGISTRY)


def model_config(name: str, **overrides: Any) -> DetectorConfig:
    """The registered config ``name`` with ``overrides`` applied (see ``merge_config``)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    cfg = _REGISTRY[name]()
    cfg.name = name
    return merge_config(cfg, overrides) if overrides else cfg


def create_model(name: str, **overrides: Any) -> AVDetector:
    """Build a randomly initialised (or wav2vec2-pretrained, via ``audio.pretrained_dir``) model.

    Example: ``create_model("avdetect-small", fusion={"depth": 2}, **{"audio.freeze": True})``.
    """
    return AVDetector(model_config(name, **overrides))


def _wav2vec2(hidden: int, layers: int, heads: int, ffn: int, conv: int, pos_kernel: int, pos_groups: int,
              stable: bool) -> dict[str, Any]:
    return dict(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
        conv_dim=[conv] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
        num_conv_pos_embeddings=pos_kernel, num_conv_pos_embedding_groups=pos_groups,
        feat_extract_norm="layer" if stable else "group", do_stable_layer_norm=stable,
        mask_time_prob=0.0, mask_feature_prob=0.0, layerdrop=0.0,
    )


@register_model("avdetect-tiny")
def _tiny() -> DetectorConfig:
    return DetectorConfig(
        visual=VisualConfig(dim=64, depth=2, heads=2, mlp_ratio=2.0, mouth_size=32, patch_size=8, tubelet=3),
        audio=AudioConfig(dim=64, wav2vec2=_wav2vec2(64, 2, 2, 128, 32, 16, 4, stable=True),
                          n_mels=40, mel_dim=32),
        sync=SyncConfig(dim=64, depth=1, heads=2, window=8, max_offset=15, embed_dim=32),
        fusion=FusionConfig(dim=64, depth=2, heads=2),
        window_frames=100,
    )


@register_model("avdetect-small")
def _small() -> DetectorConfig:
    return DetectorConfig(
        visual=VisualConfig(dim=128, depth=3, heads=4, mlp_ratio=2.0, mouth_size=48, patch_size=8, tubelet=3),
        audio=AudioConfig(dim=128, wav2vec2=_wav2vec2(128, 3, 4, 256, 64, 32, 8, stable=True),
                          n_mels=64, mel_dim=64),
        sync=SyncConfig(dim=128, depth=1, heads=4, window=8, max_offset=15, embed_dim=64),
        fusion=FusionConfig(dim=128, depth=3, heads=4),
        window_frames=100,
    )


@register_model("avdetect-base")
def _base() -> DetectorConfig:
    return DetectorConfig(
        visual=VisualConfig(dim=384, depth=8, heads=6, mlp_ratio=4.0, mouth_size=96, patch_size=16, tubelet=3,
                            use_face=True, face_size=128, face_patch_size=32, dropout=0.1),
        # wav2vec2-base architecture (95M): 12 x 768, group-norm conv feature encoder
        audio=AudioConfig(dim=384, wav2vec2=_wav2vec2(768, 12, 12, 3072, 512, 128, 16, stable=False),
                          freeze_feature_encoder=True, n_mels=80, mel_dim=128, dropout=0.1),
        sync=SyncConfig(dim=256, depth=2, heads=8, window=12, max_offset=15, embed_dim=128, dropout=0.1),
        fusion=FusionConfig(dim=384, depth=6, heads=6, mlp_ratio=4.0, dropout=0.1),
        window_frames=512,
    )
