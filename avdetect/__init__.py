"""avdetect: find audio-visual deepfakes in video files and say where in time they are.

The public surface is small on purpose::

    import avdetect
    media = avdetect.load_media("clip.mp4")   # decoded, 25 fps grid, 16 kHz mono audio
    report = avdetect.detect("clip.mp4")      # DetectionReport: verdict, segments, tracks
    det = avdetect.Detector.from_pretrained("checkpoints/avdetect-small-synth")  # load once

Heavy submodules (torch models) are imported lazily, so ``import avdetect`` stays fast.
"""
from __future__ import annotations

import logging

from avdetect._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "load_media": ("avdetect.media", "load_media"),
    "Media": ("avdetect.media", "Media"),
    "create_model": ("avdetect.models", "create_model"),
    "list_models": ("avdetect.models", "list_models"),
    "detect": ("avdetect.api", "detect"),
    "Detector": ("avdetect.api", "Detector"),
    "DetectOptions": ("avdetect.api", "DetectOptions"),
    "DetectionReport": ("avdetect.report.model", "DetectionReport"),
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'avdetect' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
