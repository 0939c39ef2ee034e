"""Training-free forensic evidence: AV sync, audio splices, face-region changes, blinks, container traces.

    from avdetect.media import load_media
    from avdetect.forensics import analyze
    result = analyze(load_media("clip.mp4"))       # ForensicsResult
    result.evidence[0].explanation                  # Evidence items, strongest first
    result.tracks["sync"]                           # per-window AV offset / confidence (seconds)
    result.to_dict()                                # JSON-ready

Every item says where (seconds; None for whole-file facts), what was measured, what it means
in one sentence, how strong it is in [0, 1] and how far to trust it. Nothing here is learned
from data; a model's sync head can be plugged in through ``analyze(..., sync_scorer=...)``.
"""
from avdetect.forensics.analyze import ANALYSES, KIND_LABELS, KINDS, analyze
from avdetect.forensics.evidence import Evidence, ForensicsResult, Track
from avdetect.forensics.sync import EnvelopeSyncScorer, SyncScorer

__all__ = ["ANALYSES", "KIND_LABELS", "KINDS", "EnvelopeSyncScorer", "Evidence", "ForensicsResult", "SyncScorer", "Track", "analyze"]
