"""The joint audio-visual model: encoders, lip-sync cross-attention, fusion, heads, losses.

Public names: :func:`create_model`, :func:`list_models`, :class:`AVDetector`,
:class:`DetectorOutput`, :class:`DetectorConfig`, :data:`CATEGORIES`, and for training
:class:`DetectorTargets` and :func:`compute_losses`.
"""
from __future__ import annotations

from avdetect.models.config import DetectorConfig
from avdetect.models.detector import CATEGORIES, AVDetector, DetectorOutput
from avdetect.models.losses import DetectorTargets, compute_losses
from avdetect.models.registry import create_model, list_models, model_config

__all__ = ["AVDetector", "CATEGORIES", "DetectorConfig", "DetectorOutput", "DetectorTargets",
           "compute_losses", "create_model", "list_models", "model_config"]
