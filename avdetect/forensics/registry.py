"""The evidence analyses as declared objects, registered in one place.

An :class:`Analysis` says what it is called, which evidence kinds it produces (and their names
in plain words), which inputs it needs and how to run it; :func:`avdetect.forensics.analyze`
loops over the registered analyses in registration order, skips those whose inputs the media
lacks (with the reason) and runs the others. The built-in analyses are registered at the end
of :mod:`avdetect.forensics.analyze`. A new kind of evidence is one new module that declares an
``Analysis`` and one :func:`register_analysis` line there (or in the caller's own code)::

    def _run(inputs: Inputs) -> tuple[list[Evidence], dict[str, Track]]:
        ...
    CLIPPING = Analysis(name="clipping", kinds=("audio_clipping",), labels={"audio_clipping": "audio clipping"},
                        needs=("audio",), run=_run)
    register_analysis(CLIPPING)

What the analyses declare is also what reports show: :func:`catalog` (carried into every
detection report as ``forensics.catalog``) maps each kind to its label, its analysis and the
per-window series its timeline lane draws (:class:`LaneSeries`), so :mod:`avdetect.report`
lays out lanes from the report dict alone, without importing this package.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from avdetect.errors import ConfigError

if TYPE_CHECKING:
    from avdetect.forensics.audio import AudioFrames, SpeechActivity
    from avdetect.forensics.evidence import Evidence, Track
    from avdetect.forensics.features import FaceFeatures
    from avdetect.forensics.sync import SyncScorer

#: Inputs an analysis can need: ``"audio"`` (per-frame audio features, :attr:`Inputs.audio`),
#: ``"video"`` (a video stream, decoded by the analysis itself from :attr:`Inputs.media`),
#: ``"faces"`` (per-frame face features, :attr:`Inputs.faces`; implies a video stream),
#: ``"speech"`` (per-frame speech activity, :attr:`Inputs.speech`: the Silero VAD's where it is
#: installed, the energy gate of the audio features otherwise; implies an audio stream).
NEEDS = ("audio", "video", "faces", "speech")
#: An analysis that needs faces is skipped when fewer frames than this show one (see
#: :attr:`Analysis.min_face_coverage`).
MIN_FACE_COVERAGE = 0.3


@dataclass(frozen=True)
class LaneSeries:
    """The per-window measurement a report draws as a faint line in one kind's timeline lane.

    Attributes:
        track: name of the :class:`~avdetect.forensics.evidence.Track` (in ``result.tracks``).
        names: series of that track drawn (their per-point maximum when several).
        full_scale: the value drawn at the lane's full height (above: clipped).
        reduce: how points are combined when a long clip is binned: ``"max"`` or ``"min"``
            (the extreme that matters: a change score's peak, a correlation's dip).
        mask: a 0/1 series of the track; points where it is 0 are not drawn.
        note: what the line shows, in plain words (the report's legend).
    """

    track: str
    names: tuple[str, ...]
    full_scale: float
    reduce: str = "max"
    mask: str | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return {"track": self.track, "names": list(self.names), "full_scale": float(self.full_scale),
                "reduce": self.reduce, "mask": self.mask, "note": self.note}


@dataclass
class Inputs:
    """What :func:`~avdetect.forensics.analyze` hands an analysis's ``run``.

    ``audio`` is set when the analysis needs ``"audio"``, ``faces`` when it needs ``"faces"``,
    ``speech`` when it needs ``"speech"`` (None otherwise); ``media`` is always the loaded file
    (:class:`avdetect.media.Media`). ``speech`` is computed once per file and shared by every
    analysis that needs it; its ``gate`` says which detector made it (``"vad"`` or ``"energy"``).
    """

    media: Any
    audio: AudioFrames | None = None
    faces: FaceFeatures | None = None
    speech: SpeechActivity | None = None
    sync_scorer: SyncScorer | None = None  # replaces the training-free sync scorer (analysis "sync")


@dataclass(frozen=True)
class Analysis:
    """One evidence analysis.

    Attributes:
        name: what ``analyze(kinds=...)``, ``result.ran`` / ``skipped`` / ``seconds`` call it.
        kinds: the evidence kinds its items carry (each kind belongs to one analysis), in the
            order reports show them.
        labels: kind -> plain words (timeline lanes, evidence tables); one for every kind.
        needs: inputs from :data:`NEEDS`; when the media lacks one, the analysis is skipped.
        run: ``run(inputs) -> (evidence items, {track name: Track})``.
        series: kind -> the :class:`LaneSeries` its lane draws (kinds without one: no line).
        min_face_coverage: with ``"faces"`` in ``needs``: the fraction of frames that must show
            a face; 0: any frame with a face is enough.
    """

    name: str
    kinds: tuple[str, ...]
    labels: dict[str, str]
    needs: tuple[str, ...]
    run: Callable[[Inputs], tuple[list[Evidence], dict[str, Track]]]
    series: dict[str, LaneSeries] = field(default_factory=dict)
    min_face_coverage: float = MIN_FACE_COVERAGE

    def catalog(self) -> dict[str, dict]:
        """kind -> ``{"label", "analysis", "series"}`` (``series`` = {} when the lane draws no line)."""
        return {k: {"label": self.labels[k], "analysis": self.name,
                    "series": self.series[k].to_dict() if k in self.series else {}} for k in self.kinds}


_REGISTRY: dict[str, Analysis] = {}


def _check(a: Analysis) -> None:
    if not a.name or not isinstance(a.name, str):
        raise ConfigError(f"an analysis needs a name, got {a.name!r}")
    if not a.kinds:
        raise ConfigError(f"analysis {a.name!r} declares no evidence kinds")
    missing = [k for k in a.kinds if not a.labels.get(k)]
    if missing or set(a.labels) - set(a.kinds):
        raise ConfigError(f"analysis {a.name!r}: labels must name exactly its kinds {list(a.kinds)} (got {sorted(a.labels)})")
    bad = [n for n in a.needs if n not in NEEDS]
    if bad:
        raise ConfigError(f"analysis {a.name!r} needs unknown input(s) {', '.join(bad)} (choose from {', '.join(NEEDS)})")
    extra = set(a.series) - set(a.kinds)
    if extra:
        raise ConfigError(f"analysis {a.name!r} declares lane series for kinds it does not produce: {sorted(extra)}")
    for k, s in a.series.items():
        if s.reduce not in ("max", "min") or not s.full_scale > 0 or not s.names:
            raise ConfigError(f"analysis {a.name!r}, kind {k!r}: a lane series needs names, full_scale > 0 and reduce 'max' or 'min'")
    for other in _REGISTRY.values():
        if other.name == a.name:
            continue
        shared = set(other.kinds) & set(a.kinds)
        if shared:
            raise ConfigError(f"analysis {a.name!r}: kind(s) {sorted(shared)} already belong to analysis {other.name!r}")


def register_analysis(analysis: Analysis, replace: bool = False) -> Analysis:
    """Add ``analysis`` to the registry (it runs after those registered before it).

    Raises :class:`~avdetect.errors.ConfigError` when the declaration is inconsistent (labels
    not matching kinds, unknown needs, a kind another analysis already produces) or the name
    is taken and ``replace`` is False.
    """
    if analysis.name in _REGISTRY and not replace:
        raise ConfigError(f"an analysis named {analysis.name!r} is already registered (pass replace=True)")
    _check(analysis)
    _REGISTRY[analysis.name] = analysis
    return analysis


def unregister_analysis(name: str) -> Analysis:
    """Remove the analysis called ``name`` and return it."""
    if name not in _REGISTRY:
        raise ConfigError(f"no analysis named {name!r} is registered (registered: {', '.join(_REGISTRY)})")
    return _REGISTRY.pop(name)


def registered_analyses() -> tuple[Analysis, ...]:
    """The registered analyses, in the order they run."""
    return tuple(_REGISTRY.values())


def analysis_names() -> tuple[str, ...]:
    """Names of the registered analyses, in the order they run (what ``analyze(kinds=...)`` takes)."""
    return tuple(_REGISTRY)


def catalog() -> dict[str, dict]:
    """Every registered kind -> ``{"label", "analysis", "series"}``, analysis by analysis in run
    order (JSON-ready; what detection reports carry as ``forensics.catalog``)."""
    out: dict[str, dict] = {}
    for a in _REGISTRY.values():
        out.update(a.catalog())
    return out
