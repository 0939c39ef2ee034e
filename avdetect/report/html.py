"""A self-contained HTML report for investigators, from the serialised report dict only.

One file, readable offline: the verdict first, then a timeline (per-frame scores with the
flagged segments shaded, one lane per kind of training-free evidence when forensics ran (see
:mod:`avdetect.report.lanes`), face presence, audio waveform envelope) drawn with matplotlib and
embedded as a base64 PNG, face thumbnails of the flagged segments (base64 JPEG), a table of
segments, the quality warnings, training-free evidence when present, and the provenance. The
page references nothing outside itself (no scripts, fonts, styles or images from the network).
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
from typing import Any

import numpy as np

from avdetect.report.lanes import STRONG, Lane, evidence_lanes, known_kinds
from avdetect.report.model import against

COLOURS = {"visual": "#1f77b4", "audio": "#2ca02c", "fused": "#d62728", "sync": "#9467bd"}
VERDICT_COLOURS = {"fake": "#b00020", "real": "#1b7f3b", "unknown": "#8a6d00"}
MAX_PLOT_POINTS = 2000
LANE_COLOUR = "#5e2a84"  # evidence bars: this colour at strength 1, fading to white at 0
LANE_RATIO = 0.55  # an evidence lane's height, relative to the score plot's 4
LANE_INCHES = 0.4  # figure height added per lane

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222;line-height:1.4}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.verdict{border-radius:8px;padding:16px 20px;color:#fff;display:flex;gap:32px;align-items:center;flex-wrap:wrap}
.verdict .big{font-size:34px;font-weight:700;letter-spacing:1px}
.verdict .kv{font-size:15px}.verdict .kv b{font-size:20px}
.muted{color:#666;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e4e4e4;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.thumbs{display:flex;gap:12px;flex-wrap:wrap}.thumbs figure{margin:0;text-align:center;font-size:12px}
.thumbs img{width:128px;height:auto;border:3px solid #b00020;border-radius:4px;display:block}
.reasons{border:1px solid #ddd;border-top:none;border-radius:0 0 8px 8px;padding:8px 20px;font-size:14px}
.reasons ul{margin:4px 0 6px;padding-left:20px}
.warn{background:#fff6db;border-left:4px solid #e0a800;padding:6px 10px;margin:4px 0;font-size:14px}
.timeline{width:100%;border:1px solid #eee}
code,pre{font-family:Menlo,Consolas,monospace;font-size:12px}pre{background:#f7f7f7;padding:8px;overflow:auto}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _data_uri(mime: str, b64: Any) -> str | None:
    """A ``data:`` URI for an attribute, or None when ``b64`` is not plain base64: report dicts
    may come from saved, passed-around JSON (``to_html(load_report_dict(path))``), so nothing
    from them reaches an attribute unchecked (a quote in it would end the attribute)."""
    if not isinstance(b64, str) or not _BASE64.fullmatch(b64):
        return None
    return f"data:{mime};base64,{b64}"


def _arr(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _bin_max(x: np.ndarray, step: int) -> np.ndarray:
    """Max per bin of ``step`` frames, NaN-aware (keeps short peaks visible on long videos)."""
    if step <= 1:
        return x
    n = -(-len(x) // step) * step
    pad = np.full(n, np.nan)
    pad[: len(x)] = x
    blocks = pad.reshape(-1, step)
    out = np.full(len(blocks), np.nan)
    ok = ~np.all(np.isnan(blocks), axis=1)
    out[ok] = np.nanmax(blocks[ok], axis=1)
    return out


def _strength_colour(strength: float) -> tuple[float, float, float]:
    """Opaque colour for an evidence bar: near white at strength 0, :data:`LANE_COLOUR` at 1
    (opaque, so overlapping bars do not add up; the strongest is drawn last, on top)."""
    a = 0.1 + 0.9 * min(1.0, max(0.0, float(strength)))
    r, g, b = (int(LANE_COLOUR[i : i + 2], 16) / 255.0 for i in (1, 3, 5))
    return (1 - a + a * r, 1 - a + a * g, 1 - a + a * b)


def _draw_lane(a, lane: Lane, duration: float) -> None:
    """One evidence lane on axes ``a`` (x in seconds, y in [0, 1]); see :class:`Lane`."""
    a.set_ylim(0, 1)
    a.set_yticks([])
    a.set_ylabel(f"{lane.label}\n{lane.summary()}", rotation=0, ha="right", va="center", fontsize=8, linespacing=1.1)
    for side in ("top", "right"):
        a.spines[side].set_color("#ddd")
    if lane.skipped is not None:
        a.set_facecolor("#f1f1f1")
        a.text(0.5, 0.5, f"skipped: {lane.skipped}", transform=a.transAxes, ha="center", va="center",
               color="#666", fontsize=8, style="italic")
        return
    a.grid(axis="x", alpha=0.25)
    if lane.line is not None:
        t, y = lane.line
        a.plot(t, 0.06 + 0.88 * y, color="#888", lw=0.7, alpha=0.7)
    if lane.bars:
        # at least about one pixel wide (a 40 ms item on an hour stays visible), strong items about
        # three, so that one strong item among hundreds of weak ones catches the eye
        min_w = [duration / (350.0 if x >= STRONG else 1000.0) for _, _, x in lane.bars]
        a.broken_barh([(s, max(e - s, w)) for (s, e, _), w in zip(lane.bars, min_w)], (0.15, 0.7),
                      facecolors=[_strength_colour(x) for _, _, x in lane.bars], edgecolor="none")
    if lane.ticks:
        a.vlines(lane.ticks, 0.0, 0.22, color="#555", lw=0.6)
    if lane.whole_file:
        top = lane.whole_file[0]
        n = len(lane.whole_file)
        text = f"whole file: strength {top:.2f}" if n == 1 else f"whole file: {n} facts, strongest {top:.2f}"
        a.text(0.995, 0.5, text, transform=a.transAxes, ha="right", va="center", fontsize=7.5, color="#222",
               bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": _strength_colour(top), "lw": 1.6})
    elif not lane.n_items:
        a.text(0.995, 0.5, "checked: nothing found", transform=a.transAxes, ha="right", va="center", fontsize=7.5, color="#888")


def timeline_png(d: dict, lanes: list[Lane] | None = None) -> str:
    """The timeline figure as base64 PNG: scores with shaded segments, one lane per evidence
    kind (:func:`~avdetect.report.lanes.evidence_lanes`; none when forensics did not run),
    the face strip and the waveform, all on one time axis."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    lanes = evidence_lanes(d) if lanes is None else lanes
    tr = d["tracks"]
    n, fps = tr["n_frames"], tr["fps"]
    step = max(1, -(-n // MAX_PLOT_POINTS))
    t = (np.arange(-(-n // step)) * step + step / 2) / fps
    duration = n / fps
    ratios = [4] + [LANE_RATIO] * len(lanes) + [0.5, 1.4]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(11.5, 5.2 + LANE_INCHES * len(lanes)), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    ax, lane_axes, axf, axw = axes[0], list(axes[1:-2]), axes[-2], axes[-1]
    for seg in d["segments"]:
        for a in axes:
            a.axvspan(seg["start_s"], seg["end_s"], color="#ff9999", alpha=0.12 if a in lane_axes else 0.35, lw=0)
    for a, lane in zip(lane_axes, lanes):
        _draw_lane(a, lane, duration)
    for name in ("fused", "visual", "audio", "sync"):
        y = _bin_max(_arr(tr[name]), step)
        if np.all(np.isnan(y)):
            continue
        ax.plot(t, y, color=COLOURS[name], lw=2.0 if name == "fused" else 1.1,
                ls=":" if name == "sync" else "-", label=name if name != "sync" else "out of sync")
    ax.axhline(d["threshold"], color="#555", ls="--", lw=0.8, label=f"threshold {d['threshold']:.3f}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("p(manipulated)")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncol=5, frameon=False)  # above the plot
    ax.grid(alpha=0.25)
    face = _bin_max(np.asarray(tr["face"], dtype=np.float64), step)
    axf.fill_between(t, 0, np.nan_to_num(face), step="mid", color="#555", lw=0)
    if not np.nansum(face):
        axf.text(0.5, 0.5, "no face in any frame", transform=axf.transAxes, ha="center", va="center", color="#888", fontsize=8)
    axf.set_yticks([])
    axf.set_ylabel("face", rotation=0, ha="right", va="center", fontsize=9)
    level = _bin_max(_arr(tr["audio_level"]), step)
    if np.all(np.isnan(level)):
        axw.text(0.5, 0.5, "no audio stream", transform=axw.transAxes, ha="center", va="center", color="#888")
    else:
        lv = np.nan_to_num(level)
        axw.fill_between(t, -lv, lv, color="#2ca02c", lw=0, alpha=0.8)
        axw.set_ylim(-1.05, 1.05)
    axw.set_yticks([])
    axw.set_ylabel("audio", rotation=0, ha="right", va="center", fontsize=9)
    axw.set_xlabel("time (s)")
    axw.set_xlim(0, max(duration, 1.0 / fps))
    fig.tight_layout(h_pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _lanes_note(lanes: list[Lane]) -> str:
    """The sentences under the timeline heading that say how to read the evidence lanes."""
    if not lanes:
        return ""
    parts = [" Under the scores, one lane per kind of training-free evidence, named as in the evidence table: each item "
             "a bar over its time span, darker = stronger (strength 0 to 1)."]
    if any(lane.whole_file for lane in lanes):
        parts.append(" Facts about the whole file have no time span: they sit in a box at the right of their lane.")
    notes: dict[str, list[str]] = {}  # what a line shows -> the lanes that draw it, in lane order
    for lane in lanes:
        if lane.line is not None:
            notes.setdefault(lane.line_note, []).append(lane.label)
    if notes:
        what = "; ".join(f"{' and '.join(names)}: {note}" if note else " and ".join(names) for note, names in notes.items())
        parts.append(f" Faint grey lines: the measurement behind a lane ({what}).")
    if any(lane.ticks for lane in lanes):
        parts.append(" Small ticks at the bottom of a lane: times listed by a whole-file fact (e.g. each blink).")
    if any(lane.binned for lane in lanes):
        parts.append(" Lanes with many items show the strongest item per short stretch of time.")
    return "".join(parts)


def _kv_table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _fmt(x, nd=3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _reasons_html(d: dict) -> str:
    """Why the verdict is what it is (``verdict_reasons``), right under the verdict, and the rule."""
    reasons = d.get("verdict_reasons") or []
    if not reasons:
        return ""
    from avdetect.report.model import DOMAIN_REASON_CODES

    outside = d["verdict"] == "unknown" and any(r["code"] in DOMAIN_REASON_CODES for r in reasons)
    head = "Outside the model's domain, so no verdict:" if outside else f"Why {d['verdict']}:"
    items = "".join(f"<li><b>{_e(r['code'])}</b>: {_e(r['message'])}</li>" for r in reasons)
    rule = f"<div class='muted'>Verdict rule: {_e(d['verdict_rule'])}.</div>" if d.get("verdict_rule") else ""
    return f"<div class='reasons'><b>{_e(head)}</b><ul>{items}</ul>{rule}</div>"


def render_html(d: dict) -> str:
    """The whole page as a string (see the module docstring)."""
    prov = d["provenance"]
    colour = VERDICT_COLOURS.get(d["verdict"], "#444")
    title = f"avdetect report: {prov['file_name']}"
    cats = sorted(d["category_probabilities"].items(), key=lambda kv: -kv[1])
    out: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<div class='muted'>sha256 {_e(prov['sha256'])} · {prov['duration_s']:.2f} s · analysed {_e(prov['started_at'])} "
        f"with avdetect {_e(prov['package_version'])}, model {_e(prov['model_name'])}</div>",
        f"<div class='verdict' style='background:{colour};margin-top:14px'>",
        f"<div class='big'>{_e(d['verdict'].upper())}</div>",
        "<div class='kv'>p(fake)<br><b>{}</b> (threshold {})</div>".format(*against(d["fake_probability"], d["threshold"])),
        f"<div class='kv'>visual<br><b>{_e(d['visual']['verdict'])}</b> {_fmt(d['visual']['score'], 2)}</div>",
        f"<div class='kv'>audio<br><b>{_e(d['audio']['verdict'])}</b> {_fmt(d['audio']['score'], 2)}</div>",
        f"<div class='kv'>flagged segments<br><b>{len(d['segments'])}</b></div>",
        f"<div class='kv'>face coverage<br><b>{d['face_coverage']:.0%}</b></div>",
        "</div>",
        _reasons_html(d),
        f"<p>{_e(d.get('explanation', ''))}</p>",
    ]
    if d["warnings"]:
        out.append("<h2>Quality warnings</h2>")
        out += [f"<div class='warn'><b>{_e(w['code'])}</b>: {_e(w['message'])}</div>" for w in d["warnings"]]
    kinds, labels = known_kinds(d)
    lanes = evidence_lanes(d, kinds=kinds, labels=labels)
    labels = {**labels, **{lane.kind: lane.label for lane in lanes}}  # table rows named as the lanes are
    out.append("<h2>Timeline</h2><div class='muted'>Per-frame probability of manipulation (25 frames per second); "
               "flagged segments shaded red; face presence and the audio waveform envelope at the bottom."
               f"{_e(_lanes_note(lanes))}</div>")
    out.append(f"<img class='timeline' alt='timeline of scores and evidence' "
               f"src='data:image/png;base64,{timeline_png(d, lanes)}'>")
    if d["thumbnails"]:
        out.append("<h2>Faces in flagged segments</h2><div class='thumbs'>")
        for th in d["thumbnails"]:
            seg = d["segments"][th["segment"]] if th["segment"] < len(d["segments"]) else None
            cap = f"#{th['segment'] + 1} at {th['time_s']:.2f} s" + (f" ({seg['modality']})" if seg else "")
            uri = _data_uri("image/jpeg", th.get("jpeg_base64"))
            img = (f"<img alt='face at {float(th['time_s']):.2f} s' src='{_e(uri)}'>" if uri is not None
                   else "<div class='muted'>(thumbnail not plain base64: not shown)</div>")
            out.append(f"<figure>{img}<figcaption>{_e(cap)}</figcaption></figure>")
        out.append("</div>")
    out.append("<h2>Flagged segments</h2>")
    if d["segments"]:
        out.append("<table><tr><th>#</th><th>start (s)</th><th>end (s)</th><th>length (s)</th><th>score</th>"
                   "<th>modality</th><th>visual</th><th>audio</th></tr>")
        for k, s in enumerate(d["segments"], start=1):
            out.append(f"<tr><td>{k}</td><td class='num'>{s['start_s']:.2f}</td><td class='num'>{s['end_s']:.2f}</td>"
                       f"<td class='num'>{s['end_s'] - s['start_s']:.2f}</td><td class='num'>{against(s['score'], d['threshold'])[0]}</td>"
                       f"<td>{_e(s['modality'])}</td><td class='num'>{_fmt(s['visual_score'])}</td>"
                       f"<td class='num'>{_fmt(s['audio_score'])}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No segment reached the threshold.</p>")
    out.append("<h2>Manipulation type (FakeAVCeleb categories)</h2>")
    out.append(_kv_table([(k, f"{v:.3f}") for k, v in cats]))
    out.append("<h2>Training-free evidence</h2>")
    if d["evidence"]:
        out.append("<table><tr><th>kind</th><th>time (s)</th><th>strength</th><th>explanation</th></tr>")
        for ev in d["evidence"]:
            when = "whole file" if ev.get("start_s") is None else f"{ev['start_s']:.2f}–{ev['end_s']:.2f}"
            label = labels.get(ev["kind"], ev["kind"])
            raw = f" <span class='muted'>({_e(ev['kind'])})</span>" if label != ev["kind"] else ""
            out.append(f"<tr><td>{_e(label)}{raw}</td><td>{_e(when)}</td><td class='num'>{ev['strength']:.2f}</td>"
                       f"<td>{_e(ev['explanation'])}</td></tr>")
        out.append("</table>")
        skipped = [lane for lane in lanes if lane.skipped is not None]
        if skipped:
            out.append("<p class='muted'>Not checked: " + "; ".join(
                f"{_e(lane.label)} (skipped: {_e(lane.skipped)})" for lane in skipped) + ".</p>")
    else:
        f = d["forensics"]
        why = f.get("error") or "; ".join(f"{k}: {v}" for k, v in f.get("skipped", {}).items()) or "nothing found"
        out.append(f"<p class='muted'>No evidence items ({_e(why)}).</p>")
    out.append("<h2>Provenance</h2>")
    out.append(_kv_table([
        ("file", prov["file_path"]), ("sha256", prov["sha256"]), ("size (bytes)", prov["size_bytes"]),
        ("duration (s)", prov["duration_s"]), ("container", prov["container"]),
        ("video", f"{prov['video_codec']} {prov['source_size']} {prov['source_fps']} fps" if prov["video_codec"] else "none"),
        ("audio", f"{prov['audio_codec']} {prov['audio_sample_rate']} Hz, {prov['audio_channels']} ch" if prov["audio_codec"] else "none"),
        ("media notes", "; ".join(prov["media_warnings"]) or "none"),
        ("tool", f"{prov['package']} {prov['package_version']} (python {prov['python_version']}, torch {prov['torch_version']})"),
        ("model", f"{prov['model_name']} ({prov['model_parameters']:,} parameters)"),
        ("checkpoint", prov["checkpoint"]), ("weights sha256", prov["weights_sha256"]),
        ("device", prov["device"]), ("started (UTC)", prov["started_at"]), ("run time (s)", prov["run_time_s"]),
        ("stages (s)", ", ".join(f"{k} {v:.2f}" for k, v in prov["stage_seconds"].items())),
        ("report schema", d["schema_version"]),
    ]))
    out.append("<details><summary>All parameters</summary><pre>"
               f"{_e(json.dumps(prov['parameters'], indent=1))}</pre></details>")
    out.append("<p class='muted'>Scores are model outputs, not proof. Read them with the warnings above and the "
               "evidence; check flagged segments by watching them (the WebVTT track shows the flags as subtitles).</p>")
    out.append("</body></html>")
    return "\n".join(out)
