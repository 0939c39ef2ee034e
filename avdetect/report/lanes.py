"""Timeline lanes: one row per forensic evidence kind, laid out from the report dict alone.

The HTML report draws, under the score plot and on the same time axis, one lane per evidence
kind the forensic analysis produced or was asked to run: each span item a bar over its
``[start_s, end_s]`` shaded by its strength, whole-file facts (no span) as a note in the lane,
never as a bar across the clip (that would read as a detection). Kinds whose analysis ran and
found nothing keep an empty lane (the reader sees they were checked); kinds whose analysis was
skipped say why. This module only decides *what* the lanes hold (:func:`evidence_lanes`, pure
data, tested directly); :mod:`avdetect.report.html` draws them.

Which analysis produces which kinds, their plain-word names and the per-window measurement
each lane draws come from the report itself: ``d["forensics"]["catalog"]``, written by the
forensic analysis (:meth:`avdetect.forensics.ForensicsResult.report_dict`), which this module
never imports. A report without a catalog (written before it existed), or holding kinds its
catalog does not name, still gets a lane per kind, under the raw kind name and without a line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: A lane with more span items than this is drawn from a per-bin maximum (``N_BINS`` bins over
#: the whole duration) instead of item by item, so an hour of evidence stays a few hundred bars.
MAX_EXACT_BARS = 150
N_BINS = 600
#: Items at or above this strength are counted as strong in the lane label.
STRONG = 0.5
#: A lane's faint line (the catalog's ``series`` of its kind) is binned to at most this many points.
MAX_LINE_POINTS = 800


@dataclass
class Lane:
    """What one evidence kind's lane shows.

    Attributes:
        kind: the evidence kind as stored in the report (e.g. ``"sync_span"``).
        label: the kind in plain words (the raw kind when unknown).
        skipped: why the analysis behind this kind did not run; None when it ran (or when items
            of this kind are present).
        bars: ``(start_s, end_s, strength)`` to draw, weakest first (strongest on top); one per
            item, or per run of equal-strength bins when ``binned``.
        binned: True when the bars are per-bin maxima rather than the items themselves.
        n_span: number of items with a time span.
        n_strong: number of items (span or whole file) with strength >= :data:`STRONG`.
        whole_file: strengths of the whole-file items (``start_s`` None), strongest first.
        ticks: times (s) named by whole-file items' ``value["times_s"]`` (e.g. blink times):
            small marks, not detections.
        line: ``(times_s, values in [0, 1])`` of the measurement behind the kind, or None.
        line_note: what the line shows, in plain words (the catalog series' ``note``).
    """

    kind: str
    label: str
    skipped: str | None = None
    bars: list[tuple[float, float, float]] = field(default_factory=list)
    binned: bool = False
    n_span: int = 0
    n_strong: int = 0
    whole_file: list[float] = field(default_factory=list)
    ticks: list[float] = field(default_factory=list)
    line: tuple[np.ndarray, np.ndarray] | None = None
    line_note: str = ""

    @property
    def n_items(self) -> int:
        return self.n_span + len(self.whole_file)

    def summary(self) -> str:
        """The second line of the lane label: counts, or that it was skipped / found nothing."""
        if self.skipped is not None:
            return "skipped"
        if not self.n_items:
            return "nothing found"
        return f"{self.n_items} item{'s' if self.n_items != 1 else ''}, {self.n_strong} ≥ {STRONG:g}"


def report_catalog(d: dict) -> dict[str, dict]:
    """The report's evidence-kind catalog (``d["forensics"]["catalog"]``: kind -> ``{"label",
    "analysis", "series"}``); {} for a report without one. Malformed entries are left out."""
    cat = (d.get("forensics") or {}).get("catalog")
    if not isinstance(cat, dict):
        return {}
    return {str(k): v for k, v in cat.items() if isinstance(v, dict)}


def known_kinds(d: dict) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """``(analysis -> kinds, kind -> label)`` from report dict ``d``'s catalog, in its order;
    empty maps for a report without one (the lanes then come from the report's items alone)."""
    kinds: dict[str, tuple[str, ...]] = {}
    labels: dict[str, str] = {}
    for kind, entry in report_catalog(d).items():
        analysis = str(entry.get("analysis") or kind)
        kinds[analysis] = kinds.get(analysis, ()) + (kind,)
        if isinstance(entry.get("label"), str) and entry["label"]:
            labels[kind] = entry["label"]
    return kinds, labels


def _duration(d: dict) -> float:
    tr = d.get("tracks") or {}
    if tr.get("n_frames") and tr.get("fps"):
        return float(tr["n_frames"]) / float(tr["fps"])
    return float(d.get("provenance", {}).get("duration_s") or 0.0)


def _binned_bars(spans: np.ndarray, duration: float, n_bins: int) -> list[tuple[float, float, float]]:
    """Per-bin maximum strength of ``spans`` (n, 3) over ``n_bins`` equal bins of
    ``[0, duration)``, as runs of equal strength; every item marks at least the bin it starts in."""
    width = duration / n_bins
    peak = np.full(n_bins, -1.0)
    a = np.clip(np.floor(spans[:, 0] / width), 0, n_bins - 1).astype(int)
    b = np.clip(np.ceil(spans[:, 1] / width), a + 1, n_bins).astype(int)  # exclusive
    for i in range(len(spans)):
        peak[a[i] : b[i]] = np.maximum(peak[a[i] : b[i]], spans[i, 2])
    bars: list[tuple[float, float, float]] = []
    k = 0
    while k < n_bins:
        if peak[k] < 0:
            k += 1
            continue
        j = k
        while j + 1 < n_bins and peak[j + 1] == peak[k]:
            j += 1
        bars.append((round(k * width, 4), round(min(duration, (j + 1) * width), 4), float(peak[k])))
        k = j + 1
    return sorted(bars, key=lambda bar: bar[2])


def _line(spec: dict | None, tracks: dict, duration: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The faint per-window line a catalog ``series`` entry ``spec`` describes (``track``,
    ``names``, ``full_scale``, ``reduce``, ``mask``), binned to at most :data:`MAX_LINE_POINTS`
    points; None without a spec, or when the report has no such track."""
    try:
        name, series = str(spec["track"]), tuple(str(s) for s in spec["names"])
        scale, how, mask = float(spec["full_scale"]), str(spec.get("reduce") or "max"), spec.get("mask")
    except (TypeError, KeyError, ValueError):
        return None
    if not series or not scale > 0 or not isinstance(tracks.get(name), dict):
        return None
    tr = tracks[name]
    if "times_s" not in tr or not all(isinstance(tr.get(s), list) for s in series):
        return None
    t = np.array([np.nan if v is None else v for v in tr["times_s"]], dtype=np.float64)
    cols = [np.array([np.nan if v is None else v for v in tr[s]], dtype=np.float64) for s in series]
    if any(len(c) != len(t) for c in cols) or not len(t):
        return None
    y = np.nanmax(np.column_stack(cols), axis=1) if len(cols) > 1 else cols[0]
    if mask is not None and isinstance(tr.get(mask), list) and len(tr[mask]) == len(t):
        y = np.where(np.array([bool(m) for m in tr[mask]]), y, np.nan)
    y = np.clip(y / scale, 0.0, 1.0)
    if np.all(np.isnan(y)):
        return None
    if len(t) > MAX_LINE_POINTS and duration > 0:  # bin by time, keeping the extreme that matters
        edges = np.linspace(0.0, duration, MAX_LINE_POINTS + 1)
        idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, MAX_LINE_POINTS - 1)
        fill = -np.inf if how == "max" else np.inf
        out = np.full(MAX_LINE_POINTS, fill)
        ok = ~np.isnan(y)
        (np.maximum if how == "max" else np.minimum).at(out, idx[ok], y[ok])
        out[np.isinf(out)] = np.nan
        t, y = (edges[:-1] + edges[1:]) / 2, out
    return t, y


def evidence_lanes(d: dict, kinds: dict[str, tuple[str, ...]] | None = None, labels: dict[str, str] | None = None,
                   max_exact_bars: int = MAX_EXACT_BARS, n_bins: int = N_BINS) -> list[Lane]:
    """The lanes for report dict ``d``, top to bottom; empty when forensics did not run.

    Order: the kinds of the report's catalog in its order (analysis by analysis), for analyses
    that ran or were skipped and for kinds with items; then kinds it does not know, sorted by
    name; then skipped analyses it does not know (one lane each, by their name).

    Args:
        d: the serialised report (``DetectionReport.to_dict()`` or a JSON report).
        kinds, labels: analysis -> kinds and kind -> plain words; None: from the report's
            catalog (:func:`known_kinds`). Pass ``{}`` to lay out from the items alone.
        max_exact_bars: a lane with more span items is binned.
        n_bins: bins over the duration for a binned lane.
    """
    if kinds is None or labels is None:
        k_known, l_known = known_kinds(d)
        kinds = k_known if kinds is None else kinds
        labels = l_known if labels is None else labels
    cat = report_catalog(d)
    f = d.get("forensics") or {}
    evidence = d.get("evidence") or []
    ran = list(f.get("ran") or [])
    skipped = dict(f.get("skipped") or {})
    if not evidence and not ran:  # not requested, not installed, failed, or nothing could run
        return []
    duration = _duration(d)
    by_kind: dict[str, list[dict]] = {}
    for ev in evidence:
        by_kind.setdefault(str(ev.get("kind")), []).append(ev)

    order: list[tuple[str, str | None]] = []  # (kind, skip reason)
    seen: set[str] = set()
    for analysis, ks in kinds.items():
        for k in ks:
            if k in by_kind or analysis in ran or analysis in skipped:
                reason = skipped.get(analysis) if k not in by_kind and analysis not in ran else None
                order.append((k, reason))
                seen.add(k)
    order += [(k, None) for k in sorted(by_kind) if k not in seen]
    order += [(a, why) for a, why in skipped.items() if a not in kinds and a not in by_kind and a != "all"]

    tracks = f.get("tracks") or {}
    lanes: list[Lane] = []
    for kind, reason in order:
        items = by_kind.get(kind, [])
        lane = Lane(kind=kind, label=labels.get(kind, kind), skipped=reason)
        spans = np.array([[float(e["start_s"]), float(e["start_s"] if e.get("end_s") is None else e["end_s"]),
                           float(e.get("strength") or 0.0)] for e in items if e.get("start_s") is not None],
                         dtype=np.float64).reshape(-1, 3)  # (n, 3): start_s, end_s (a point when missing), strength
        lane.n_span = len(spans)
        lane.whole_file = sorted((float(e.get("strength") or 0.0) for e in items if e.get("start_s") is None), reverse=True)
        lane.n_strong = int(sum(float(e.get("strength") or 0.0) >= STRONG for e in items))
        if len(spans) > max_exact_bars and duration > 0:
            lane.bars, lane.binned = _binned_bars(spans, duration, n_bins), True
        else:
            lane.bars = [(float(a), float(b), float(s)) for a, b, s in spans[np.argsort(spans[:, 2], kind="stable")]]
        for e in items:
            v = e.get("value")
            if e.get("start_s") is None and isinstance(v, dict) and isinstance(v.get("times_s"), list):
                lane.ticks += [float(t) for t in v["times_s"] if isinstance(t, (int, float))]
        spec = cat.get(kind, {}).get("series")
        if reason is None and spec:
            lane.line = _line(spec, tracks, duration)
            lane.line_note = str(spec.get("note") or "") if lane.line is not None else ""
        lanes.append(lane)
    return lanes
