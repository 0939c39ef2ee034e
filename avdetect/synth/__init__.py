"""Synthetic audio-visual deepfake benchmark: talking heads with exactly known forgeries.

Public API::

    from avdetect.synth import generate, render_clip, ClipSpec, Manipulation
    generate("data/synth", n=200, seed=0, workers=2)           # folder + LAV-DF/AV1M metadata
    truth = render_clip("clip.mp4", ClipSpec(seed=7, manipulation=Manipulation(kind="both")))
"""
from avdetect.synth.clip import ClipSpec, ClipTruth, Manipulation, RenderedClip, encode, render, render_clip
from avdetect.synth.dataset import SynthConfig, generate, plan

__all__ = ["generate", "render_clip", "render", "encode", "plan", "ClipSpec", "ClipTruth", "Manipulation",
           "RenderedClip", "SynthConfig"]
