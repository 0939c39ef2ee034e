"""Training-free forensic evidence: AV sync, audio splices, face-region changes, blinks, container traces.

    from avdetect.media import load_media
    from avdetect.forensics import analyze
    result = analyze(load_media("clip.mp4"))       # ForensicsResult
    result.evidence[0].explanation                  # Evidence items, strongest first
    result.tracks["sync"]                           # per-window AV offset / confidence (seconds)
    result.to_dict()                                # JSON-ready
    result.report_dict(), result.evidence_dicts()   # what a detection report's forensics / evidence hold

Every item says where (seconds; None for whole-file facts), what was measured, what it means
in one sentence, how strong it is in [0, 1] and how far to trust it. Nothing here is learned
from data; a model's sync head can be plugged in through ``analyze(..., sync_scorer=...)``.

Each analysis is a declared :class:`Analysis` (name, evidence kinds and their labels, needed
inputs, lane series, ``run``) in :mod:`avdetect.forensics.registry`; :func:`catalog` is the
vocabulary reports read (carried in the report as ``forensics.catalog``).
"""
from avdetect.forensics.analyze import analyze
from avdetect.forensics.evidence import Evidence, ForensicsResult, Track
from avdetect.forensics.registry import (
    Analysis,
    Inputs,
    LaneSeries,
    analysis_names,
    catalog,
    register_analysis,
    registered_analyses,
    unregister_analysis,
)
from avdetect.forensics.sync import EnvelopeSyncScorer, SyncScorer

__all__ = ["Analysis", "EnvelopeSyncScorer", "Evidence", "ForensicsResult", "Inputs", "LaneSeries", "SyncScorer", "Track",
           "analysis_names", "analyze", "catalog", "register_analysis", "registered_analyses", "unregister_analysis"]
