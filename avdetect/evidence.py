"""The ``evidence`` stage of detect: training-free forensics over the file (:mod:`avdetect.forensics`).

Its items go into the report's ``evidence`` and can change the verdict only as
:mod:`avdetect.verdict` says. A failure of the analysis is recorded in the report
(``forensics.error`` and a ``forensics_failed`` warning) and logged; detection is never lost to it.
"""
from __future__ import annotations

import logging
from typing import Any

from avdetect.report.model import QualityWarning

log = logging.getLogger(__name__)


def gather_evidence(media, sources, run: bool, warnings: list[QualityWarning]) -> tuple[list[dict], dict[str, Any]]:
    """Evidence items (report dicts) and the report's ``forensics`` block. ``run``: False skips the
    analysis (recorded as not requested); ``sources``: the :class:`avdetect.sources.Sources` the
    model read (when their faces were tracked in a worker process, it ran this stage on its own
    face features while the model ran, and its result is taken; else their forensic face
    features are reused when complete, and its audio step, started with the sources, is
    taken); a failure appends to ``warnings``."""
    info: dict[str, Any] = {"available": True, "ran": [], "skipped": {}, "error": None, "tracks": {}}
    if not run:
        info["skipped"] = {"all": "not requested (forensics=False)"}
        return [], info
    done = sources.worker_evidence() if sources is not None else None
    if done is not None:  # the face worker process ran the stage while the model ran
        if "error" in done:
            return [], _failed(media, info, done["error"], warnings)
        info.update(done["info"])
        info["shared_face_tracking"] = True
        return done["items"], info
    from avdetect.forensics import analyze

    ff = sources.forensic_face_features() if sources is not None else None
    try:
        res = analyze(media, face_track=None, face_feats=ff,
                      audio_prefetch=sources.evidence_audio if sources is not None else None)
    except Exception as err:  # recorded in the report and logged, never hidden
        return [], _failed(media, info, f"{type(err).__name__}: {err}", warnings)
    info.update(res.report_dict())
    items = res.evidence_dicts()
    info["shared_face_tracking"] = ff is not None
    return items, info


def _failed(media, info: dict, error: str, warnings: list[QualityWarning]) -> dict:
    log.warning("%s: forensics failed: %s", media.info.path, error)
    info["error"] = error
    warnings.append(QualityWarning("forensics_failed", f"training-free forensics failed: {error}"))
    return info
