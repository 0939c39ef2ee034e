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
(:mod:`avdetect.models.visual`). Importing this package loads torch but not OpenCV or the
face tracker.
"""
from __future__ import annotations

from avdetect.models.config import DetectorConfig
from avdetect.models.detector import AVDetector, DetectorFeatures, DetectorOutput
from avdetect.models.losses import DetectorTargets, compute_losses
from avdetect.models.registry import create_model, list_models, model_config
from avdetect.vocab import CATEGORIES

__all__ = ["AVDetector", "CATEGORIES", "DetectorConfig", "DetectorFeatures", "DetectorOutput", "DetectorTargets",
           "compute_losses", "create_model", "list_models", "model_config"]
