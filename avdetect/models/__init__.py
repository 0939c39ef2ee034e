"""The joint audio-visual model: encoders, lip-sync cross-attention, fusion, heads, losses.

    import torch
    from avdetect.models import create_model, compute_losses, DetectorTargets

    model = create_model("avdetect-small")                  # or -tiny (tests), -base (GPU)
    out = model(mouth, audio, visual_mask=valid)            # mouth (B, T, 3, 96, 96) uint8,
                                                            # audio (B, T * 640) float 16 kHz
    out.frame_fused_logits                                  # (B, T) per 40 ms frame
    targets = DetectorTargets.from_segments(T, visual_segments, audio_segments)
    compute_losses(out, targets, model.config.loss)["total"].backward()
    model.save_pretrained("ckpt/");  AVDetector.from_pretrained("ckpt/")

Public names: :func:`create_model`, :func:`list_models`, :func:`model_config`,
:class:`AVDetector`, :class:`DetectorOutput`, :class:`DetectorFeatures`, :class:`DetectorConfig`,
:data:`CATEGORIES` (re-exported from :mod:`avdetect.vocab`), and for training
:class:`DetectorTargets` and :func:`compute_losses`. The full input and output contract is in
:mod:`avdetect.models.detector`; visual encoders are chosen by ``visual.arch``
(:mod:`avdetect.models.visual`). Names load on first use: the model classes load torch (never
OpenCV or the face tracker), ``avdetect.models.config`` alone does not.
"""
from __future__ import annotations

import importlib

# Names load on first use (PEP 562), so that ``avdetect.models.config`` can be read without
# importing torch: detect reads a checkpoint's config while the model still loads.
_LAZY = {
    "DetectorConfig": "avdetect.models.config",
    "AVDetector": "avdetect.models.detector", "DetectorFeatures": "avdetect.models.detector",
    "DetectorOutput": "avdetect.models.detector",
    "DetectorTargets": "avdetect.models.losses", "compute_losses": "avdetect.models.losses",
    "create_model": "avdetect.models.registry", "list_models": "avdetect.models.registry",
    "model_config": "avdetect.models.registry",
    "CATEGORIES": "avdetect.vocab",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
