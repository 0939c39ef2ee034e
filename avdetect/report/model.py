"""The :class:`DetectionReport`: what ``avdetect.detect`` returns, typed and serialisable.

The report is built by :mod:`avdetect.api` and read back by every writer only through its
serialised form (``report.to_dict()``, a JSON-ready dict), so a JSON file written today can be
rendered as HTML / WebVTT / CSV later, or by other tools. The dict follows a versioned JSON
Schema shipped beside this module (``detection_report.schema.json``, ``SCHEMA_VERSION``);
:func:`avdetect.report.schema.validate_report` checks it.

All times are in seconds. Per-frame tracks are on the 25 fps grid (frame ``i`` covers
``[i / 25, (i + 1) / 25)`` s) and hold ``None`` where the modality was not observed (no face in
that frame, no audio).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = "1.0"
VERDICTS = ("fake", "real", "unknown")
MODALITY_VERDICTS = ("fake", "real", "unknown")
SEGMENT_MODALITIES = ("visual", "audio", "audio-visual")
TRACK_NAMES = ("visual", "audio", "fused", "sync")
#: ``VerdictReason`` codes that put a file outside the checkpoint's domain (:mod:`avdetect.domain`).
DOMAIN_REASON_CODES = ("audio_only", "no_audio", "no_face", "low_face_coverage", "small_face", "small_face_in_frame",
                       "still_video", "several_faces", "no_speech")


@dataclass
class Segment:
    """A time span the model flags as manipulated.

    ``score`` is the proposal confidence (0..1, soft-NMS ranked); ``modality`` says which
    stream looks manipulated inside it (mean per-frame score of that stream >= the threshold,
    or the stronger of the two). ``visual_score`` / ``audio_score``: mean per-frame scores inside
    (None where that stream was not observed).
    """

    start_s: float
    end_s: float
    score: float
    modality: str
    visual_score: float | None = None
    audio_score: float | None = None

    def as_row(self) -> list:
        """``[start_s, end_s, score, modality]``."""
        return [self.start_s, self.end_s, self.score, self.modality]


@dataclass
class ModalityResult:
    """Verdict for one stream. ``verdict`` is ``"unknown"`` when the stream was not observed
    (no audio stream; no face in enough frames), never ``"real"`` by default."""

    available: bool
    score: float | None
    verdict: str
    note: str = ""


@dataclass
class QualityWarning:
    """Something that limits how far the result can be trusted (``code`` is stable, for tools)."""

    code: str
    message: str


def against(value: float, *limits: float, least: int = 3, most: int = 6) -> tuple[str, ...]:
    """``value`` and each of ``limits`` as text with one number of decimals (at least ``least``),
    the fewest at which the rounded value stays on its side of every limit: p(fake) 0.86275
    against a threshold of 0.863 reads "0.8628" and "0.8630", never "0.863 is below 0.86". A
    value at or above a limit always reads at or above it (rounding keeps order); ``most``
    decimals at most."""
    digits = least
    while digits < most and any(value < t and round(value, digits) >= round(t, digits) for t in limits):
        digits += 1
    return tuple(f"{x:.{digits}f}" for x in (value, *limits))


@dataclass
class VerdictReason:
    """Why the verdict is what it is, in plain words with the measured value.

    ``code`` is stable, for tools: the domain checks of :mod:`avdetect.domain` (``audio_only``,
    ``no_audio``, ``no_face``, ``low_face_coverage``, ``small_face``, ``small_face_in_frame``,
    ``still_video``, ``several_faces``, ``no_speech``), then ``stream_not_examined``,
    ``model_score``, ``flagged_segments``, ``strong_evidence`` (evidence agreeing with the model),
    ``evidence_unconfirmed`` (strong evidence the model does not confirm: unknown), ``model_uncertain``
    (p(fake) between the checkpoint's ``real_below`` and its threshold: unknown) and ``nothing_found`` (see
    :data:`avdetect.verdict.VERDICT_RULE`). ``brief``: a few words for one-line summaries.
    """

    code: str
    message: str
    brief: str = ""


@dataclass
class Thumbnail:
    """A face crop at ``time_s`` (inside flagged segment number ``segment``), JPEG, base64."""

    segment: int
    time_s: float
    jpeg_base64: str


@dataclass
class Tracks:
    """Per-frame tracks on the 25 fps grid, from ``start_s`` (always 0 here).

    ``visual``/``audio``/``fused``: probability that the frame is manipulated in that stream
    (None where unobserved); ``sync``: probability that audio and lips are out of sync;
    ``face``: 1 where a face was tracked, else 0; ``audio_level``: peak absolute amplitude of
    the frame's 640 audio samples (0..1; None without audio), for the waveform strip.
    """

    fps: float
    start_s: float
    n_frames: int
    visual: list[float | None]
    audio: list[float | None]
    fused: list[float | None]
    sync: list[float | None]
    face: list[int]
    audio_level: list[float | None]


@dataclass
class Provenance:
    """Where the result came from: the file, the tool, the model, the parameters, the run."""

    file_name: str
    file_path: str
    sha256: str
    size_bytes: int
    duration_s: float
    container: str
    video_codec: str | None
    audio_codec: str | None
    source_size: list[int] | None  # [width, height] as displayed
    source_fps: float | None
    audio_sample_rate: int | None
    audio_channels: int | None
    media_warnings: list[str]
    package: str
    package_version: str
    model_name: str
    checkpoint: str
    weights_sha256: str
    model_parameters: int
    parameters: dict[str, Any]
    device: str
    started_at: str  # ISO 8601, UTC
    run_time_s: float
    stage_seconds: dict[str, float]
    python_version: str
    torch_version: str


@dataclass
class DetectionReport:
    """Result of one ``detect`` call (see the module docstring and the README's schema)."""

    file: str
    verdict: str  # fake | real | unknown
    fake_probability: float
    threshold: float
    category_probabilities: dict[str, float]
    visual: ModalityResult
    audio: ModalityResult
    segments: list[Segment]
    proposals: dict[str, list[list[float]]]  # modality -> [[confidence, start_s, end_s], ...]
    tracks: Tracks
    face_coverage: float
    warnings: list[QualityWarning]
    evidence: list[dict[str, Any]]
    forensics: dict[str, Any]
    thumbnails: list[Thumbnail]
    provenance: Provenance
    schema_version: str = SCHEMA_VERSION
    explanation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    verdict_reasons: list[VerdictReason] = field(default_factory=list)  # why this verdict (see VerdictReason)
    verdict_rule: str = ""  # the rule that turned scores, evidence and domain checks into the verdict

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict following the schema (what every writer reads)."""
        d = asdict(self)
        # the version first and the reasons beside the verdict, for humans reading the JSON
        head = {"schema_version": d.pop("schema_version"), "file": d.pop("file"), "verdict": d.pop("verdict"),
                "verdict_reasons": d.pop("verdict_reasons"), "verdict_rule": d.pop("verdict_rule")}
        return {**head, **d}

    @classmethod
    def from_dict(cls, data: dict[str, Any], validate: bool = True) -> "DetectionReport":
        """Rebuild a report from its dict (validated against the schema unless ``validate=False``)."""
        if validate:
            from avdetect.report.schema import validate_report

            validate_report(data)
        d = dict(data)
        return cls(
            file=d["file"], verdict=d["verdict"], fake_probability=d["fake_probability"], threshold=d["threshold"],
            category_probabilities=dict(d["category_probabilities"]),
            visual=ModalityResult(**d["visual"]), audio=ModalityResult(**d["audio"]),
            segments=[Segment(**s) for s in d["segments"]],
            proposals={k: [list(r) for r in v] for k, v in d["proposals"].items()},
            tracks=Tracks(**d["tracks"]), face_coverage=d["face_coverage"],
            warnings=[QualityWarning(**w) for w in d["warnings"]],
            evidence=[dict(e) for e in d["evidence"]], forensics=dict(d["forensics"]),
            thumbnails=[Thumbnail(**t) for t in d["thumbnails"]], provenance=Provenance(**d["provenance"]),
            schema_version=d["schema_version"], explanation=d.get("explanation", ""), extra=dict(d.get("extra", {})),
            verdict_reasons=[VerdictReason(**r) for r in d.get("verdict_reasons", [])],
            verdict_rule=d.get("verdict_rule", ""),
        )

    # ------------------------------------------------------------------ conveniences
    @property
    def is_fake(self) -> bool:
        return self.verdict == "fake"

    def segment_rows(self) -> list[list]:
        """Flagged segments as ``[start_s, end_s, score, modality]`` rows."""
        return [s.as_row() for s in self.segments]

    def verdict_text(self) -> str:
        """The verdict in capitals with its reasons' briefs unless it is ``real``, e.g.
        ``UNKNOWN (outside the model's domain: small face 31 px)``."""
        text = self.verdict.upper()
        if self.verdict == "real" or not self.verdict_reasons:
            return text
        briefs = [r.brief or r.code.replace("_", " ") for r in self.verdict_reasons]
        if self.verdict == "unknown" and any(r.code in DOMAIN_REASON_CODES for r in self.verdict_reasons):
            return f"{text} (outside the model's domain: {'; '.join(briefs)})"
        return f"{text} ({'; '.join(briefs)})"

    def summary(self) -> str:
        """One line: file, verdict (with its reasons, see :meth:`verdict_text`), probability,
        segments (and the checkpoint's caveat, if any)."""
        segs = ", ".join(f"{s.start_s:.2f}-{s.end_s:.2f}s {s.modality} {against(s.score, self.threshold)[0]}"
                         for s in self.segments[:5])
        more = f" (+{len(self.segments) - 5} more)" if len(self.segments) > 5 else ""
        p, t = against(self.fake_probability, self.threshold)
        line = (f"{self.file}: {self.verdict_text()} p(fake)={p} "
                f"(threshold {t}); visual {self.visual.verdict}, audio {self.audio.verdict}; "
                f"{len(self.segments)} segment(s){': ' + segs + more if segs else ''}")
        caveat = next((w.message for w in self.warnings if w.code == "checkpoint_domain"), None)
        return line + (f"\n  caveat: {caveat}" if caveat else "")
