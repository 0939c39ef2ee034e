"""Dataclass configurations of the joint audio-visual detector.

A :class:`DetectorConfig` fully describes an architecture (its sub-configs describe the
visual encoder, audio encoder, lip-sync cross-attention, fusion, and the loss weights used by
recipes). It round-trips through plain dicts (``to_dict`` / ``from_dict``) so that
``config.json`` beside a checkpoint rebuilds exactly the same network.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avdetect.errors import CheckpointError, ConfigError
from avdetect.vocab import FACE_SIZE, MOUTH_SIZE


@dataclass
class VisualConfig:
    """Video transformer over per-frame mouth (and optional face) crops.

    ``arch`` names the encoder class in :data:`avdetect.models.visual.VISUAL_ENCODERS`
    (``config.json`` files written before the field existed mean the default). ``mouth_size``/
    ``face_size`` are the internal resolutions: crops are resized inside the model from
    ``input_mouth_size``/``input_face_size``, the crop sizes it is trained and served with
    (:data:`avdetect.vocab.MOUTH_SIZE`/``FACE_SIZE``; a preprocessing cache with other crops
    is refused by :meth:`avdetect.data.cache.FeatureCache.check`). ``tubelet`` is the
    temporal extent of the patch embedding (odd, stride 1, so there is still one token set
    per frame).
    """

    arch: str = "spacetime"
    dim: int = 128
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    mouth_size: int = 48
    patch_size: int = 8
    use_face: bool = False
    face_size: int = 64
    face_patch_size: int = 16
    tubelet: int = 3
    temporal_window: int | None = None  # frames each side for temporal attention; None = global
    dropout: float = 0.0
    grad_checkpointing: bool = False  # recompute blocks in backward (long windows on GPU)
    input_mouth_size: int = MOUTH_SIZE
    input_face_size: int = FACE_SIZE
    face_backend: str = "opencv"  # the face backend whose crops it was trained on; detect uses it (config.json
    #                               files written before the field existed: the Haar backend, which made them)


@dataclass
class AudioConfig:
    """wav2vec2 branch + log-mel branch, fused to one vector per 25 Hz frame.

    ``wav2vec2`` holds ``transformers.Wav2Vec2Config`` keyword arguments (random init).
    ``pretrained_dir`` (a local folder, never a hub id) replaces them at construction time
    with the folder's config and weights; the model then records the loaded config here so
    that a saved checkpoint rebuilds without the folder.
    """

    dim: int = 128
    wav2vec2: dict[str, Any] = field(default_factory=dict)
    pretrained_dir: str | None = None
    freeze: bool = False
    freeze_feature_encoder: bool = False
    layer_weighted_sum: bool = True
    normalize_waveform: bool = True
    use_mel: bool = True
    n_mels: int = 64
    mel_dim: int = 64
    dropout: float = 0.0


@dataclass
class SyncConfig:
    """Bidirectional audio<->visual cross-attention and the offset-classification sync head."""

    dim: int = 128
    depth: int = 1
    heads: int = 4
    mlp_ratio: float = 2.0
    window: int | None = 8  # frames each side a query may attend to; None = global
    max_offset: int = 15  # sync head classifies offsets in [-max_offset, max_offset] frames
    embed_dim: int = 64
    dropout: float = 0.0


@dataclass
class FusionConfig:
    """Temporal transformer over fused per-frame features, and the heads."""

    dim: int = 128
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    window: int | None = None
    dropout: float = 0.0
    offset_init_scale: float = 8.0  # frames; initial scale of the start/end distance head


@dataclass
class LossWeights:
    """Weights of the loss terms (see :mod:`avdetect.models.losses`)."""

    clip: float = 1.0
    category: float = 0.5
    frame_visual: float = 1.0
    frame_audio: float = 1.0
    frame_fused: float = 1.0
    boundary: float = 0.5
    offsets: float = 0.5
    sync: float = 0.2
    boundary_pos_weight: float = 5.0
    boundary_sigma: float = 1.0  # frames; width of the Gaussian start/end targets


@dataclass
class DetectorConfig:
    """Everything needed to rebuild an :class:`~avdetect.models.detector.AVDetector`."""

    name: str = "avdetect-custom"
    visual: VisualConfig = field(default_factory=VisualConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    window_frames: int = 100  # the trained window length (frames); inference windows use it

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DetectorConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"detector config must be a mapping, got {type(data).__name__}")
        return merge_config(cls(), data)


_SECTIONS = {"visual": VisualConfig, "audio": AudioConfig, "sync": SyncConfig,
             "fusion": FusionConfig, "loss": LossWeights}


def merge_config(base: DetectorConfig, overrides: dict[str, Any]) -> DetectorConfig:
    """Return a copy of ``base`` with ``overrides`` applied.

    Overrides are either top-level fields (``window_frames=50``), whole sections given as a
    mapping merged field by field (``audio={"freeze": True}``), or dotted keys
    (``{"fusion.depth": 2}``). Unknown names raise :class:`ConfigError`.
    """
    data = dataclasses.asdict(base)
    for key, value in overrides.items():
        if "." in key:
            section, _, sub = key.partition(".")
            _set_section_field(data, section, sub, value)
        elif key in _SECTIONS:
            if isinstance(value, _SECTIONS[key]):
                value = dataclasses.asdict(value)
            if not isinstance(value, dict):
                raise ConfigError(f"config section {key!r} must be a mapping, got {type(value).__name__}")
            for sub, sub_value in value.items():
                _set_section_field(data, key, sub, sub_value)
        elif key in {f.name for f in dataclasses.fields(DetectorConfig)}:
            data[key] = value
        else:
            raise ConfigError(f"unknown detector config field {key!r}")
    sections = {name: _SECTIONS[name](**data.pop(name)) for name in _SECTIONS}
    return DetectorConfig(**data, **sections)


def _set_section_field(data: dict, section: str, sub: str, value: Any) -> None:
    if section not in _SECTIONS:
        raise ConfigError(f"unknown detector config section {section!r}")
    names = {f.name for f in dataclasses.fields(_SECTIONS[section])}
    if sub not in names:
        raise ConfigError(f"unknown field {sub!r} in detector config section {section!r}")
    data[section][sub] = value


#: A checkpoint folder's files and what its config.json declares (read by :func:`read_checkpoint_config`).
ARCHITECTURE = "AVDetector"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def read_checkpoint_config(folder: str | Path) -> DetectorConfig:
    """The :class:`DetectorConfig` of the checkpoint folder ``folder``, read and checked without
    building the model (nor importing torch). Raises :class:`CheckpointError` for a missing
    folder or file, invalid JSON, another architecture or an invalid config."""
    folder = Path(folder)
    weights, config_file = folder / WEIGHTS_NAME, folder / CONFIG_NAME
    if not folder.is_dir():
        raise CheckpointError("checkpoint folder does not exist", folder)
    if not config_file.is_file():
        raise CheckpointError(f"no {CONFIG_NAME} in checkpoint folder", folder)
    if not weights.is_file():
        raise CheckpointError(f"no {WEIGHTS_NAME} in checkpoint folder", folder)
    try:
        meta = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"invalid JSON: {err}", config_file) from err
    if not isinstance(meta, dict) or "architecture" not in meta or "config" not in meta:
        raise CheckpointError("config.json needs 'architecture' and 'config' entries", config_file)
    if meta["architecture"] != ARCHITECTURE:
        raise CheckpointError(f"architecture {meta['architecture']!r} is not {ARCHITECTURE!r}", config_file)
    try:
        return DetectorConfig.from_dict(meta["config"])
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"invalid model config: {err}", config_file) from err
