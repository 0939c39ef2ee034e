"""Forgeries made from real footage, with exactly known spans, per stream.

The training data a detector can have without anyone's deepfake dataset: real talking-head
clips manipulated over known spans in the families of the published datasets (LAV-DF: replaced
words and re-rendered mouths; FakeAVCeleb: face swap, lip-sync, cloned voice; AV-Deepfake1M:
both streams) and of self-blended images.

* :mod:`avdetect.forge.ops` -- the manipulations on arrays (frames or cached crops, waveforms);
* :mod:`avdetect.forge.families` -- the families and :func:`forge_clip`, the one entry point
  training (fresh forgeries every step) and the file writer share;
* :mod:`avdetect.forge.files` -- :func:`forge_folder`: forged copies of video files with LAV-DF
  and AV-Deepfake1M metadata (``avdetect forge`` on the command line);
* :mod:`avdetect.forge.corpus` -- a corpus of real clips split by person.
"""
from avdetect.forge.families import AUDIO_FAMILIES, FAMILIES, VISUAL_FAMILIES, ForgeryRecord, forge_clip
from avdetect.forge.files import Source, forge_folder

__all__ = ["FAMILIES", "VISUAL_FAMILIES", "AUDIO_FAMILIES", "ForgeryRecord", "forge_clip", "forge_folder", "Source"]
