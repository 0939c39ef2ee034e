"""The typed, JSON-ready results of the forensic analysis.

An :class:`Evidence` item is one observation an investigator can check: where (a time span in
seconds, or the whole file), what was measured (a number or a small dict), one plain sentence
saying what it means, how strong it is (0 = nothing unusual, 1 = as strong as this kind of
evidence gets) and how far it can be trusted. A :class:`ForensicsResult` holds the items, the
per-window tracks behind them (for plots), the analyses that could not run, with the reason,
and the catalog of evidence kinds (labels and plotted series) that reports lay out from.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _jsonable(value):
    """numpy scalars/arrays and nested containers -> plain Python (floats rounded to 4 places)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if not np.isfinite(v) else round(v, 4)
    return value


@dataclass
class Evidence:
    """One forensic observation.

    Attributes:
        kind: what family of evidence (each registered analysis declares its kinds; see
            :func:`avdetect.forensics.catalog`), e.g. ``"sync_span"``.
        start_s, end_s: the time span in seconds; both None for a fact about the whole file.
        value: the measured quantity (a number, or a dict of named numbers/strings).
        explanation: one plain sentence: what was seen and what it may mean.
        strength: in [0, 1]; how unusual the observation is for untouched footage.
        reliability: a short note on when this kind of evidence misleads.
    """

    kind: str
    start_s: float | None
    end_s: float | None
    value: float | dict | str | None
    explanation: str
    strength: float
    reliability: str

    def __post_init__(self) -> None:
        self.strength = float(min(1.0, max(0.0, self.strength)))
        if (self.start_s is None) != (self.end_s is None):
            raise ValueError("start_s and end_s must both be set or both be None")
        if self.start_s is not None and self.end_s < self.start_s:
            raise ValueError(f"end_s {self.end_s} < start_s {self.start_s}")

    @property
    def whole_file(self) -> bool:
        return self.start_s is None

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "start_s": None if self.start_s is None else round(float(self.start_s), 3),
            "end_s": None if self.end_s is None else round(float(self.end_s), 3),
            "value": _jsonable(self.value),
            "explanation": self.explanation,
            "strength": round(self.strength, 3),
            "reliability": self.reliability,
        }


@dataclass
class Track:
    """A time series behind some evidence, for plotting: ``times_s`` (n,) and named (n,) arrays."""

    times_s: np.ndarray
    values: dict[str, np.ndarray]
    description: str = ""

    def to_dict(self) -> dict:
        return {"description": self.description, "times_s": _jsonable(self.times_s), **{k: _jsonable(v) for k, v in self.values.items()}}


@dataclass
class ForensicsResult:
    """Everything :func:`avdetect.forensics.analyze` found.

    Attributes:
        path: the analysed file.
        duration_s: its duration.
        evidence: all items, strongest first.
        tracks: the time series behind the evidence, by track name (e.g. ``"sync"``: per-window
            offset and confidence; ``"audio_change"``: per-frame change scores).
        ran: the analyses that ran.
        skipped: analysis -> why it did not run (no audio, no face, not requested...).
        seconds: processing time per analysis, and of the inputs they share:
            ``"audio_features"`` (audio decoding + per-frame audio features) and
            ``"face_features"`` (video decoding + face tracking + per-frame face features, or only
            the checks when the caller passed the features).
        catalog: every registered evidence kind -> ``{"label", "analysis", "series"}``
            (:func:`avdetect.forensics.registry.catalog`); what reports name and plot kinds by.
    """

    path: str
    duration_s: float
    evidence: list[Evidence] = field(default_factory=list)
    tracks: dict[str, Track] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    catalog: dict[str, dict] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Evidence]:
        return [e for e in self.evidence if e.kind == kind]

    def strongest(self, min_strength: float = 0.0) -> list[Evidence]:
        return [e for e in self.evidence if e.strength >= min_strength]

    def to_dict(self, tracks: bool = True) -> dict:
        out = {
            "file": self.path,
            "duration_s": round(self.duration_s, 3),
            "ran": list(self.ran),
            "skipped": dict(self.skipped),
            "evidence": [e.to_dict() for e in self.evidence],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }
        if tracks:
            out["tracks"] = {k: t.to_dict() for k, t in self.tracks.items()}
        return out

    def evidence_dicts(self) -> list[dict]:
        """The evidence items as a detection report's ``evidence`` list holds them (strongest first)."""
        return [e.to_dict() for e in self.evidence]

    def report_dict(self) -> dict:
        """What a detection report's ``forensics`` field holds, except what only the caller knows
        (``available``, ``error``, ``shared_face_tracking``): ``ran``, ``skipped``, ``seconds``
        (rounded to 4 places), ``tracks`` and the ``catalog`` of kinds the report's timeline
        lanes are laid out from."""
        return {
            "ran": list(self.ran),
            "skipped": {str(k): str(v) for k, v in self.skipped.items()},
            "seconds": {str(k): round(float(v), 4) for k, v in self.seconds.items()},
            "tracks": {k: t.to_dict() for k, t in self.tracks.items()},
            "catalog": _jsonable(self.catalog),
        }
