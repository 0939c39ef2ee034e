"""The HTML report's evidence lanes: one timeline lane per evidence kind, from the report dict alone.

Reports are built directly from :class:`DetectionReport` (no model, no video), with evidence of
several kinds, whole-file facts, skipped analyses, an unknown kind from "another version", and an
hour-long report with 500 items; the lane layout (:func:`evidence_lanes`) is checked as data,
the page as parsed HTML.
"""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from avdetect.report import DetectionReport, ModalityResult, Provenance, QualityWarning, Segment, Tracks, to_html
from avdetect.report import validate_report
from avdetect.report.lanes import N_BINS, evidence_lanes, known_kinds, report_catalog
from conftest import HTMLCollector

FPS = 25.0


def _item(kind: str, a: float | None, b: float | None, strength: float, value=None) -> dict:
    return {"kind": kind, "start_s": a, "end_s": b, "value": value, "strength": strength,
            "explanation": f"{kind} sentence {a}", "reliability": "test"}


def _catalog() -> dict:
    """The catalog of the registered analyses, as ``ForensicsResult.report_dict()`` writes it."""
    from avdetect.forensics import catalog

    return json.loads(json.dumps(catalog()))


def _report(duration_s: float, evidence: list[dict], ran: list[str], skipped: dict[str, str],
            tracks: dict | None = None, segments: list[Segment] | None = None, catalog: dict | None = None) -> dict:
    """A schema-valid report dict of ``duration_s`` seconds with the given forensics, and
    ``catalog`` (None: none, as in a report written before catalogs existed) as its
    ``forensics.catalog``."""
    n = int(round(duration_s * FPS))
    rng = np.random.default_rng(0)
    score = [round(float(v), 3) for v in rng.uniform(0, 0.4, n)]
    prov = Provenance(
        file_name="clip.mp4", file_path="/data/clip.mp4", sha256="ab" * 32, size_bytes=1234, duration_s=duration_s,
        container="mov,mp4,m4a,3gp,3g2,mj2", video_codec="h264", audio_codec="aac", source_size=[640, 360],
        source_fps=25.0, audio_sample_rate=16000, audio_channels=1, media_warnings=[], package="avdetect",
        package_version="0.0-test", model_name="avdetect-tiny", checkpoint="test", weights_sha256="cd" * 32,
        model_parameters=1000, parameters={"threshold": 0.5}, device="cpu", started_at="2026-01-01T00:00:00+00:00",
        run_time_s=1.0, stage_seconds={"decode": 0.5}, python_version="3.x", torch_version="x",
    )
    r = DetectionReport(
        file="/data/clip.mp4", verdict="fake" if segments else "real", fake_probability=0.7 if segments else 0.2,
        threshold=0.5, category_probabilities={"RealVideo-RealAudio": 0.4, "RealVideo-FakeAudio": 0.3,
                                               "FakeVideo-RealAudio": 0.2, "FakeVideo-FakeAudio": 0.1},
        visual=ModalityResult(True, 0.2, "real"), audio=ModalityResult(True, 0.3, "real"),
        segments=segments or [], proposals={"fused": []},
        tracks=Tracks(fps=FPS, start_s=0.0, n_frames=n, visual=score, audio=score, fused=score, sync=score,
                      face=[1] * n, audio_level=[0.3] * n),
        face_coverage=1.0, warnings=[QualityWarning("test", "a warning")], evidence=evidence,
        forensics={"available": True, "ran": ran, "skipped": skipped, "error": None, "tracks": tracks or {}},
        thumbnails=[], provenance=prov,
    )
    d = json.loads(json.dumps(r.to_dict()))  # what a JSON report holds
    validate_report(d)
    if catalog is not None:  # added after validation until the schema lists forensics.catalog
        d["forensics"]["catalog"] = catalog
    return d


KINDS = {"container": ("container",), "audio": ("audio_splice", "audio_bandwidth"),
         "sync": ("sync_offset", "sync_span"), "visual": ("visual_change", "face_track_jump"), "blinks": ("blinks",)}


@pytest.fixture(scope="module")
def mixed() -> dict:
    """Sync spans, whole-file facts, a visual analysis that found nothing, blinks skipped, an
    unknown kind (from a newer version), a sync track for the faint line."""
    ev = [
        _item("sync_span", 3.0, 6.0, 0.8), _item("sync_span", 8.0, 8.5, 0.1),
        _item("sync_offset", None, None, 0.0, {"offset_s": 0.04}),
        _item("container", None, None, 0.3, {"software": "Lavf"}), _item("container", None, None, 0.6),
        _item("audio_splice", 3.0, 3.4, 0.55), _item("lip_texture", 1.0, 2.0, 0.4),
    ]
    times = [0.5 * k + 1.0 for k in range(17)]
    sync = {"description": "per-window", "times_s": times, "corr_at_clip_offset": [0.7] * 17,
            "judged": [1] * 16 + [0], "flagged": [0] * 17}
    return _report(10.0, ev, ran=["container", "audio", "sync", "visual"], skipped={"blinks": "no face was found"},
                   tracks={"sync": sync}, segments=[Segment(3.0, 6.0, 0.9, "audio", 0.2, 0.9)], catalog=_catalog())


def test_lanes_order_kinds_bars_and_whole_file_facts(mixed):
    lanes = evidence_lanes(mixed, kinds=KINDS, labels={"sync_span": "lip sync", "container": "file container"})
    assert [l.kind for l in lanes] == ["container", "audio_splice", "audio_bandwidth", "sync_offset", "sync_span",
                                       "visual_change", "face_track_jump", "blinks", "lip_texture"]
    by = {l.kind: l for l in lanes}
    # spans: one bar per item, weakest first (strongest drawn on top)
    assert by["sync_span"].bars == [(8.0, 8.5, 0.1), (3.0, 6.0, 0.8)] and not by["sync_span"].binned
    assert by["sync_span"].n_strong == 1 and by["sync_span"].label == "lip sync"
    # whole-file facts never become bars
    assert by["container"].bars == [] and by["container"].whole_file == [0.6, 0.3] and by["container"].n_strong == 1
    assert by["sync_offset"].bars == [] and by["sync_offset"].whole_file == [0.0]
    # ran and found nothing: an empty lane, not skipped; skipped analysis: reason, no bars
    assert by["visual_change"].n_items == 0 and by["visual_change"].skipped is None
    assert by["audio_bandwidth"].skipped is None and by["audio_bandwidth"].summary() == "nothing found"
    assert by["blinks"].skipped == "no face was found" and by["blinks"].summary() == "skipped"
    # unknown kind: raw name
    assert by["lip_texture"].label == "lip_texture" and by["lip_texture"].bars == [(1.0, 2.0, 0.4)]
    # the sync track's faint line, masked where the window was not judged
    t, y = by["sync_span"].line
    assert len(t) == 17 and np.allclose(y[:16], 0.7) and np.isnan(y[16])
    assert by["container"].line is None and by["audio_splice"].line is None


def test_lanes_from_the_report_alone():
    """Without the forensics maps (an old JSON, or forensics not installed): lanes for the kinds
    present and one per skipped analysis, under their raw names."""
    d = _report(5.0, [_item("sync_span", 1.0, 2.0, 0.9), _item("zzz_new", None, None, 0.2)], ran=["sync"],
                skipped={"blinks": "too short"}, catalog=_catalog())
    lanes = evidence_lanes(d, kinds={}, labels={})
    assert [(l.kind, l.label, l.skipped) for l in lanes] == [("sync_span", "sync_span", None), ("zzz_new", "zzz_new", None),
                                                             ("blinks", "blinks", "too short")]


def test_old_report_without_catalog_degrades_to_raw_kinds():
    """A report written before ``forensics.catalog`` existed: one lane per kind present and per
    skipped analysis, under the raw names, no faint lines (nothing says which track is whose),
    and the page still renders with the raw names in the evidence table."""
    sync = {"description": "per-window", "times_s": [1.0, 1.5, 2.0], "corr_at_clip_offset": [0.7] * 3, "judged": [1] * 3}
    d = _report(5.0, [_item("sync_span", 1.0, 2.0, 0.9), _item("container", None, None, 0.2)], ran=["sync", "container"],
                skipped={"blinks": "too short"}, tracks={"sync": sync})
    assert "catalog" not in d["forensics"] and report_catalog(d) == {} and known_kinds(d) == ({}, {})
    lanes = evidence_lanes(d)
    assert [(l.kind, l.label, l.skipped, l.line) for l in lanes] == [
        ("container", "container", None, None), ("sync_span", "sync_span", None, None), ("blinks", "blinks", "too short", None)]
    page, p = _page(d)
    rows = re.findall(r"<tr><td>([^<]+)", page[page.index("Training-free evidence"):])
    assert {r.strip() for r in rows} == {"sync_span", "container"}
    assert "Faint grey lines" not in " ".join(p.text)
    assert _png_size(page)[1] == 520 + 3 * 40


def test_lanes_come_from_the_catalog_in_the_report():
    """Labels, lane order and the faint line all follow the report's catalog: a kind the code
    has never heard of gets its plain-word label and its line from the catalog alone."""
    cat = {"zz_first": {"label": "first thing", "analysis": "new", "series": {}},
           "zz_scored": {"label": "scored thing", "analysis": "new",
                         "series": {"track": "new_track", "names": ["a", "b"], "full_scale": 2.0, "reduce": "max",
                                    "mask": "ok", "note": "how new it is"}}}
    track = {"description": "x", "times_s": [0.5, 1.5, 2.5], "a": [1.0, 0.0, 4.0], "b": [0.0, 1.5, None], "ok": [1, 1, 0]}
    d = _report(4.0, [_item("zz_scored", 1.0, 2.0, 0.6)], ran=["new"], skipped={}, tracks={"new_track": track}, catalog=cat)
    lanes = evidence_lanes(d)
    assert [(l.kind, l.label) for l in lanes] == [("zz_first", "first thing"), ("zz_scored", "scored thing")]
    t, y = lanes[1].line
    assert list(t) == [0.5, 1.5, 2.5] and np.allclose(y[:2], [0.5, 0.75]) and np.isnan(y[2])
    assert lanes[1].line_note == "how new it is" and lanes[0].line is None
    page, p = _page(d)
    assert "scored thing: how new it is" in " ".join(p.text)


def test_lanes_module_never_imports_forensics():
    """report/ lays out lanes from the report dict alone: in a fresh interpreter, laying out and
    rendering a report with a catalog loads no part of avdetect.forensics."""
    import subprocess
    import sys

    d = _report(3.0, [_item("sync_span", 1.0, 2.0, 0.9)], ran=["sync"], skipped={}, catalog=_catalog())
    code = ("import json, sys; from avdetect.report.lanes import evidence_lanes; from avdetect.report.html import render_html; "
            "d = json.loads(sys.stdin.read()); lanes = evidence_lanes(d); render_html(d); "
            "assert [l.label for l in lanes if l.kind == 'sync_span'] == ['lip sync'], lanes; "
            "print(sorted(m for m in sys.modules if m.startswith('avdetect.forensics')))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(d), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("forensics", [
    {"available": True, "ran": [], "skipped": {"all": "not requested (forensics=False)"}, "error": None, "tracks": {}},
    {"available": False, "ran": [], "skipped": {"all": "avdetect.forensics is not installed"}, "error": None, "tracks": {}},
    {"available": True, "ran": [], "skipped": {}, "error": "RuntimeError: boom", "tracks": {}},
])
def test_no_lanes_when_forensics_did_not_run(forensics):
    d = _report(4.0, [], ran=[], skipped={})
    d["forensics"] = forensics
    assert evidence_lanes(d) == []
    page = to_html(d)
    assert "one lane per kind" not in page
    png = base64.b64decode(re.search(r"data:image/png;base64,([^'\"]+)", page).group(1))
    height = int.from_bytes(png[20:24], "big")
    assert height == 520  # the figure without lanes: 5.2 in at 100 dpi, as before lanes existed


def test_hour_long_report_with_500_items_is_binned():
    rng = np.random.default_rng(1)
    starts = np.sort(rng.uniform(0, 3590, 500))
    strength = rng.uniform(0, 0.45, 500)
    strength[123] = 0.95  # one strong item among many weak ones
    ev = [_item("audio_splice", round(float(a), 2), round(float(a) + 0.4, 2), round(float(s), 3))
          for a, s in zip(starts, strength)]
    ev += [_item("sync_span", 100.0, 160.0, 0.7), _item("blinks", None, None, 0.1, {"times_s": [1.0, 5.0, 9.5]})]
    d = _report(3600.0, ev, ran=["audio", "sync", "blinks"], skipped={"visual": "not requested"})
    lanes = evidence_lanes(d, kinds=KINDS, labels={})
    by = {l.kind: l for l in lanes}
    splice = by["audio_splice"]
    assert splice.binned and splice.n_span == 500 and 0 < len(splice.bars) <= N_BINS
    assert max(b[2] for b in splice.bars) == pytest.approx(0.95) and splice.n_strong == 1
    # the strong item's bin survives, at its time (bin width 6 s)
    strong = [b for b in splice.bars if b[2] == pytest.approx(0.95)]
    assert len(strong) == 1 and strong[0][0] <= starts[123] + 1e-6 and strong[0][1] >= starts[123] + 0.4 - 1e-6
    assert all(0.0 <= a < b <= 3600.0 for a, b, _ in splice.bars)
    # a single long span stays exact; blink times become ticks, not bars
    assert by["sync_span"].bars == [(100.0, 160.0, 0.7)] and not by["sync_span"].binned
    assert by["blinks"].ticks == [1.0, 5.0, 9.5] and by["blinks"].bars == []
    assert by["visual_change"].skipped == "not requested" and by["face_track_jump"].skipped == "not requested"


def _page(d: dict) -> tuple[str, HTMLCollector]:
    page = to_html(d)
    p = HTMLCollector()
    p.feed(page)
    return page, p


def _png_size(page: str) -> tuple[int, int]:
    png = base64.b64decode(re.search(r"data:image/png;base64,([^'\"]+)", page).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_html_names_table_rows_as_lanes_and_stays_self_contained(mixed):
    page, p = _page(mixed)
    text = " ".join(p.text)
    _, labels = known_kinds(mixed)
    lanes = evidence_lanes(mixed)
    assert len(lanes) == 9
    # evidence table rows use the lanes' plain-word names (first cell of each row)
    rows = re.findall(r"<tr><td>([^<]+)", page[page.index("Training-free evidence"):])
    assert {r.strip() for r in rows} == {labels.get(k, k) for k in ("sync_span", "sync_offset", "container", "audio_splice",
                                                                       "lip_texture")}
    assert labels["sync_span"] in {l.label for l in lanes}
    assert "skipped: no face was found" in text and "one lane per kind" in text
    # a taller figure than the lane-less one: one band per lane
    w, h = _png_size(page)
    assert w == 1150 and h == 520 + 9 * 40
    low = page.lower()
    assert not re.search(r"(src|href)\s*=\s*['\"]?\s*(https?:)?//", low)
    assert "http://" not in low and "https://" not in low and "url(" not in low
    assert not any(t in ("script", "link", "iframe") for t, _ in p.tags)
    assert all(a.get("src", "data:").startswith("data:") for _, a in p.tags)


def test_every_known_kind_has_a_plain_label():
    kinds, labels = known_kinds({"forensics": {"catalog": _catalog()}})
    assert list(kinds) == ["container", "audio", "sync", "visual", "blinks"]
    every = [k for ks in kinds.values() for k in ks]
    assert set(labels) == set(every)
    assert all(labels[k] != k for k in every if "_" in k)  # snake_case names always get plain words
    assert len(set(labels.values())) == len(labels)  # two kinds never share a lane name


def test_hour_long_page_renders(tmp_path):
    rng = np.random.default_rng(2)
    ev = [_item("visual_change", float(a), float(a) + 0.4, float(s))
          for a, s in zip(np.sort(rng.uniform(0, 3590, 500)), rng.uniform(0, 1, 500))]
    d = _report(3600.0, ev, ran=["visual", "container"], skipped={"audio": "the file has no audio stream",
                                                                  "sync": "the file has no audio stream"}, catalog=_catalog())
    page, p = _page(d)
    text = " ".join(p.text)
    assert text.count("skipped: the file has no audio stream") == 4  # two kinds each for audio and sync, in the table note
    assert "strongest item per short stretch" in text
    w, h = _png_size(page)
    assert h == 520 + 7 * 40  # container, audio x2, sync x2, visual x2


_PAYLOAD = "x' onerror='alert(1)' \"><script>alert(2)</script><img src=x onerror=alert(3)>"


def _poison(value, skip=("verdict", "modality", "kind", "schema_version", "jpeg_base64")):
    """Every free-text string of a report dict replaced by an HTML/attribute injection payload
    (enum-like fields kept, so the dict still renders)."""
    if isinstance(value, dict):
        return {k: (v if k in skip else _poison(v, skip)) for k, v in value.items()}
    if isinstance(value, list):
        return [_poison(v, skip) for v in value]
    return _PAYLOAD if isinstance(value, str) else value


def _assert_inert(page: str) -> None:
    p = HTMLCollector()
    p.feed(page)
    handlers = [(tag, name) for tag, attrs in p.tags for name in attrs if name.lower().startswith("on")]
    assert handlers == [], handlers  # no event-handler attribute came out of the data
    assert [t for t, _ in p.tags if t == "script"] == []
    srcs = [attrs.get("src", "") for tag, attrs in p.tags if tag == "img"]
    assert all(s.startswith("data:image/") and "'" not in s and '"' not in s for s in srcs), srcs


def test_saved_report_cannot_inject_script(mixed, tmp_path):
    from avdetect.errors import ReportError
    from avdetect.report import load_report_dict

    d = json.loads(json.dumps(mixed))
    d["thumbnails"] = [{"segment": 0, "time_s": 4.0, "jpeg_base64": "x' onerror='alert(\"thumb\")"}]
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ReportError, match="jpeg_base64.*does not match"):  # the exploit: refused on load
        load_report_dict(path)
    page = to_html(d)  # rendered without validation, it is shown as text, not run
    _assert_inert(page)
    assert "thumbnail not plain base64: not shown" in page
    # every free-text field poisoned (file names, explanations, warnings, parameters, catalog labels)
    hostile = _poison(mixed)
    hostile["thumbnails"] = [{"segment": 0, "time_s": 4.0, "jpeg_base64": base64.b64encode(b"\xff\xd8jpeg").decode()}]
    page = to_html(hostile)
    _assert_inert(page)
    assert _PAYLOAD not in page and html_escaped(_PAYLOAD) in page  # shown, escaped


def html_escaped(s: str) -> str:
    import html

    return html.escape(s, quote=True)
