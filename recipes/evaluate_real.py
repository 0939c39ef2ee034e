"""Evaluate checkpoints on real footage the way a user meets it: ``Detector.detect`` on files.

    python recipes/evaluate_real.py --checkpoint avdetect-small-real --checkpoint avdetect-small-synth \\
        --split-file data_manifests/realfaces_split.json --base ../shared \\
        --forged data/forged_test --dev-fakes ../shared/realfaces/dev_fakes --out runs/eval_real

For each checkpoint it runs the whole ``detect`` (faces, model, evidence, verdict rule) on

* every untouched real clip of the split file (the accusation count: verdict ``fake`` or a
  flagged segment; reported for the held-out test people and for all clips); with
  ``--reencode CRF``, also a copy of each re-encoded as a messaging app sends it (H.264 at that
  crf, AAC 96 kb/s), counted the same way;
* an ``avdetect forge`` folder of the test people (re-encoded real copies and one forged copy
  per family): per family AUC of ``fake_probability`` against the test reals (untouched and
  re-encoded), and AP@0.5 / AP@0.75 of the fused proposals (LAV-DF protocol); once as is and
  once with each clip's leading silence trimmed from the input (DESIGN.md section 4);
* a folder of generated talking heads (``dev_fakes``): per generator, how many score above
  every real test clip, and how many get verdict ``fake``.

Writes ``detections.jsonl`` per checkpoint and ``summary.json`` / ``summary.md`` for all.

``--calibrate`` (one checkpoint) first sets the checkpoint's decision threshold on real footage:
it runs ``detect`` on the untouched real clips of the ``dev`` split (and on their re-encoded
copies in ``--forged-dev``), finds for each clip the lowest threshold at which it would be
accused (its ``fake_probability``, or the mean fused score of its best-scoring proposal, which
would be flagged as a segment), and writes the highest of these plus ``--margin`` plus the
*re-encoding spread* to ``calibration.json``: no dev real clip is accused at the shipped
threshold. The spread (:func:`reencode_spread`) is the most that a re-encoded, compressed or
half-size copy of a dev clip moved that value from the clip's own: a real video just under a
threshold without it is accused once a messaging app re-encodes it (measured: the held-out
``grid_lbbc2a`` at 0.8627 against 0.863, its crf-28 copy 0.8637). ``fake`` is the verdict that
must not turn on a re-encoding; ``real_below`` (the ``--miss-rate`` quantile of the forged dev
clips, which ``avdetect forge`` already wrote at random qualities) is not moved: a re-encoding
that crosses it turns ``real`` into ``unknown`` or back, which accuses no one.
The dev values also hold *excerpts* of each untouched dev clip (:func:`cut_offsets`: the clip cut
by 1 to 4 whole seconds at its start, and apart at its end, while at least a model window
remains). An excerpt is a clip a user may well submit, not noise around one: it is a dev value of
its own, and the spread ignores it. The clip score averages the clip head over the windows, so a
clip's score is the mean of what its parts score, and an excerpt of its most fake-looking part
scores higher than the whole (measured: the dev clip ``lp_d20``, 0.840 untouched, windows from
1.4 s on at 0.90-0.91; cut by 1 s it was accused at 0.880, by 2 s at 0.909).
``--calibrate --from-stored`` recomputes both from the values a calibration.json already holds,
without detecting. With a handful of dev clips that bounds the false-alarm rate on real footage
only loosely; the test split says more.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from avdetect.errors import AVDetectError

logger = logging.getLogger("recipes.evaluate_real")
GENERATOR_PREFIXES = {"vasa1": "VASA-1", "sadtalker": "SadTalker", "wav2lip": "Wav2Lip"}


def _reencode(path: str, out: Path, crf: int, start_s: float = 0.0, vf: str | None = None,
              duration_s: float | None = None) -> str:
    """``path`` re-encoded (H.264 at ``crf``, AAC) from ``start_s`` on (for ``duration_s``, or to
    its end), through filter ``vf``."""
    from avdetect.media import ffmpeg_exe

    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += (["-ss", f"{start_s:.3f}"] if start_s > 0 else []) + ["-i", path] + (["-vf", vf] if vf else [])
    cmd += ["-t", f"{duration_s:.3f}"] if duration_s is not None else []
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-threads", "1", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return str(out)


def _leading_silence_s(path: str) -> float:
    from avdetect.data.predict import leading_silence_frames
    from avdetect.media import load_media
    from avdetect.timegrid import frames_to_seconds

    m = load_media(path)
    return frames_to_seconds(leading_silence_frames(m.audio)) if m.has_audio else 0.0


def _row(det, path: str, **facts) -> dict:
    t0 = time.perf_counter()
    try:
        r = det.detect(path).to_dict()
    except AVDetectError as err:
        return {**facts, "path": path, "error": str(err)}
    return {**facts, "path": path, "verdict": r["verdict"], "p": r["fake_probability"],
            "segments": [[s["start_s"], s["end_s"], s["score"], s["modality"]] for s in r["segments"]],
            "proposals": r["proposals"].get("fused", []), "reasons": r.get("verdict_reasons", []),
            "seconds": round(time.perf_counter() - t0, 2)}


def _reencoded_row(det, source, crf: int, folder: Path) -> dict:
    """The ``real_reencoded`` row of one split source: ``detect`` on its copy at ``crf``; a copy
    ffmpeg cannot write is an error row (the run goes on), as a file detect refuses is."""
    facts = dict(group="real_reencoded", family="real", split=source.split, person=source.person, truth=[], crf=crf)
    try:
        copy = _reencode(source.path, folder / f"{Path(source.path).stem}_crf{crf}.mp4", crf)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        tail = (getattr(err, "stderr", b"") or b"").decode("utf-8", "replace").strip().splitlines()[-1:]
        return {**facts, "path": source.path, "error": f"re-encoding at crf {crf} failed: {' '.join(tail) or err}"}
    return {**_row(det, copy, **facts), "path": source.path}


def run_checkpoint(ckpt: str, args, out: Path) -> list[dict]:
    from avdetect.api import Detector
    from avdetect.forge.corpus import split_sources

    det = Detector.from_pretrained(ckpt, device="cpu")
    rows: list[dict] = []
    sources = list(split_sources(args.split_file, args.base))
    for s in sources:
        rows.append(_row(det, s.path, group="real", family="real", split=s.split, person=s.person, truth=[]))
    if args.reencode is not None:  # the same footage as a messaging app delivers it
        with tempfile.TemporaryDirectory(prefix="avdetect-reenc-") as td:
            for s in sources:
                rows.append(_reencoded_row(det, s, args.reencode, Path(td)))
    if args.forged:
        info = json.loads((Path(args.forged) / "forge_info.json").read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory(prefix="avdetect-trim-") as td:
            for f in info["files"]:
                path = str(Path(args.forged) / f["file"])
                truth = [[f["start_s"], f["end_s"]]] if f["modify_video"] or f["modify_audio"] else []
                facts = dict(group="forged", family=f["family"], split=f["split"], person=f["person"], truth=truth,
                             file=f["file"])
                rows.append(_row(det, path, **facts))
                if args.trim:
                    lead = _leading_silence_s(path)
                    if lead > 0:
                        r = _row(det, _reencode(path, Path(td) / f"{Path(path).stem}_trim.mp4", 16, start_s=lead),
                                 **facts)
                        r["proposals"] = [[c, a + lead, b + lead] for c, a, b in r.get("proposals", [])]
                    else:
                        r = dict(rows[-1])
                    r.update(group="forged_trimmed", trimmed_s=lead)
                    rows.append(r)
    if args.dev_fakes:
        for p in sorted(Path(args.dev_fakes).iterdir()):
            if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".mpg", ".avi"):
                gen = next((v for k, v in GENERATOR_PREFIXES.items() if p.name.startswith(k)), "other")
                rows.append(_row(det, str(p), group="dev_fakes", family=gen, split="-", person="-", truth=[]))
    (out / "detections.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def accusation_threshold(report: dict) -> float:
    """The lowest threshold at which ``detect`` would accuse this clip (verdict from the clip
    score, or a flagged segment: a proposal whose frames' mean fused p(fake) reaches it)."""
    from avdetect.timegrid import seconds_to_frames_round

    fused = np.array([np.nan if v is None else v for v in report["tracks"]["fused"]], float)
    best = float(report["fake_probability"])
    for _, a, b in report["proposals"].get("fused", []):
        i = seconds_to_frames_round(a)
        j = max(i + 1, seconds_to_frames_round(b))
        seg = fused[i:j]
        if np.isfinite(seg).any() and (j - i) >= 5:  # detect flags segments of 0.2 s and more
            best = max(best, float(np.nanmean(seg)))
    return best


#: The copies of every untouched dev clip that calibration adds: (tag, ffmpeg filter, crf).
VARIANTS = (("crf32", None, 32), ("half", "scale=trunc(iw/4)*2:trunc(ih/4)*2", 23))
#: Excerpts of every untouched dev clip that calibration adds: cut by up to this many whole seconds
#: at each end (one at a time), with at least a model window left (module docstring).
MAX_CUT_S = 4
CUT_CRF = 18  # an excerpt is cut as an editor exports it: re-encoded, at a high quality


def cut_offsets(duration_s: float, window_s: float, max_cut_s: int = MAX_CUT_S) -> list[int]:
    """Whole seconds to cut from one end of a dev clip of ``duration_s``: 1..``max_cut_s`` while
    at least ``window_s`` (the model's window) remains; [] for a clip not longer than that."""
    return [k for k in range(1, max_cut_s + 1) if duration_s - k >= window_s - 1e-6]


def _parse_key(key: str) -> tuple[str, str]:
    """``(kind, stem)`` of a calibration key: kind ``untouched`` (key ``NAME``), ``reencoded``
    (``reencoded/STEM.mp4``, an ``avdetect forge`` real copy), ``variant``
    (``variant/TAG_STEM.mp4``, a :data:`VARIANTS` copy) or ``cut`` (``cut/startK_STEM.mp4`` or
    ``cut/endK_STEM.mp4``, the clip less K seconds at that end); stem: the untouched clip's."""
    group, _, name = key.rpartition("/")
    stem = Path(name).stem
    if not group:
        return "untouched", stem
    if group == "reencoded":
        return group, stem
    tag, sep, rest = stem.partition("_")
    if group == "variant":
        if not sep or tag not in {t for t, _, _ in VARIANTS}:
            raise ValueError(f"calibration key {key!r}: not a known variant ({', '.join(t for t, _, _ in VARIANTS)})")
        return group, rest
    if group == "cut":
        if not sep or not re.fullmatch(r"(start|end)\d+", tag):
            raise ValueError(f"calibration key {key!r}: a cut is cut/startK_STEM or cut/endK_STEM")
        return group, rest
    raise ValueError(f"calibration key {key!r}: unknown group {group!r}")


def reencode_spread(values: dict[str, float]) -> float:
    """The most that a copy of a dev clip (re-encoded, compressed, half size; keys as in
    :func:`_parse_key`) moved its accusation value from the untouched clip's, either way; 0.0
    when no clip has a copy. Excerpts (``cut/``) are not copies: they are values of their own. A
    copy or excerpt whose untouched clip is missing is a ValueError."""
    parsed = {k: _parse_key(k) for k in values}
    own = {stem: values[k] for k, (kind, stem) in parsed.items() if kind == "untouched"}
    shifts = []
    for k, v in values.items():
        kind, stem = parsed[k]
        if kind == "untouched":
            continue
        if stem not in own:
            raise ValueError(f"calibration key {k!r}: no untouched clip {stem!r} among the values")
        if kind != "cut":
            shifts.append(abs(float(v) - float(own[stem])))
    return round(max(shifts, default=0.0), 4)


def operating_point(values: dict[str, float], margin: float, fake_quantile: float | None = None) -> dict:
    """Threshold and real_below from the dev values (see the module docstring): the threshold is
    the highest value plus ``margin`` plus the re-encoding spread, clipped to [0.05, 0.95];
    real_below (when the forged dev clips' quantile ``fake_quantile`` is given) that quantile, at
    most the threshold."""
    worst_key = max(values, key=values.get)
    worst = values[worst_key]
    spread = reencode_spread(values)
    wanted = round(float(worst + margin + spread), 4)
    thr = round(float(min(0.95, max(0.05, wanted))), 4)
    out = {"threshold": thr, "worst": worst, "worst_key": worst_key, "capped": thr < wanted, "spread": spread,
           "real_below": None}
    if fake_quantile is not None:
        out["real_below"] = round(float(min(thr, fake_quantile)), 4)
    return out


def _write_operating_point(path: Path, data: dict, values: dict[str, float], margin: float,
                           fake_quantile: float | None, note: str = "") -> dict:
    """Set ``data``'s operating point (:func:`operating_point` of the dev ``values``): threshold,
    re-encoding spread, the method in words (its clip counts read from the values' keys) and,
    with a forged quantile, real_below; write it as ``path`` (calibration.json) and return it."""
    point = operating_point(values, margin, fake_quantile)
    kinds = [_parse_key(k)[0] for k in values]
    n = {kind: kinds.count(kind) for kind in ("untouched", "reencoded", "variant", "cut")}
    data.update(threshold=point["threshold"], reencode_spread=point["spread"], dev_real_values=values, method=(
        f"lowest threshold at which none of {len(values)} real dev clips is accused ({n['untouched']} untouched clips "
        f"of the dev people, {n['reencoded']} re-encoded copies, {n['variant']} copies compressed at crf 32 or halved "
        f"in size, {n['cut']} excerpts cut by 1-{MAX_CUT_S} s at one end; highest clip value {point['worst']:.4f}, "
        f"{point['worst_key']}) plus a margin of {margin} plus the re-encoding spread {point['spread']:.4f} (the most a copy moved "
        f"a dev clip's value from its own)" + (", capped at 0.95" if point["capped"] else "")
        + f"; written by recipes/evaluate_real.py --calibrate{note}"))
    if point["real_below"] is not None:
        data.update(real_below=point["real_below"], real_below_quantile=fake_quantile)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def recalibrate_stored(ckpt: str, margin: float) -> dict:
    """``--calibrate --from-stored``: threshold and real_below recomputed by :func:`operating_point`
    from the ``dev_real_values`` (and ``real_below_quantile``, else ``real_below``) a checkpoint's
    calibration.json holds, without running detect; the file is rewritten."""
    from avdetect.checkpoints import CALIBRATION_FILE, resolve_checkpoint
    from avdetect.errors import CheckpointError

    path = resolve_checkpoint(ckpt) / CALIBRATION_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    values = data.get("dev_real_values")
    if not values:
        raise CheckpointError("its calibration.json holds no dev_real_values: run --calibrate without --from-stored", path)
    return _write_operating_point(path, data, values, margin, data.get("real_below_quantile", data.get("real_below")),
                                  note=" (recomputed from these dev_real_values by --calibrate --from-stored)")


def calibrate(ckpt: str, args) -> dict:
    """Threshold from untouched (and re-encoded) real dev clips; written to calibration.json."""
    from avdetect.api import Detector
    from avdetect.checkpoints import CALIBRATION_FILE, resolve_checkpoint
    from avdetect.forge.corpus import split_sources
    from avdetect.media import inspect_media
    from avdetect.timegrid import frames_to_seconds

    folder = resolve_checkpoint(ckpt)
    det = Detector.from_pretrained(folder, device="cpu", threshold=0.99, forensics=False, thumbnails=False)
    paths = [s.path for s in split_sources(args.split_file, args.base, splits=("dev",))]
    n_untouched = len(paths)
    if args.forged_dev:
        info = json.loads((Path(args.forged_dev) / "forge_info.json").read_text(encoding="utf-8"))
        paths += [str(Path(args.forged_dev) / f["file"]) for f in info["files"] if f["family"] == "real"]

    with tempfile.TemporaryDirectory(prefix="avdetect-cal-") as td:
        copies: dict[str, str] = {}  # key -> file
        if args.variants:  # the dev people's footage as users also meet it: compressed hard, half size, cut
            window_s = frames_to_seconds(int(det.model.config.window_frames))
            for p in paths[:n_untouched]:
                stem = Path(p).stem
                for tag, vf, crf in VARIANTS:
                    copies[f"variant/{tag}_{stem}.mp4"] = _reencode(p, Path(td) / f"{tag}_{stem}.mp4", crf, vf=vf)
                duration = inspect_media(p).duration
                for k in cut_offsets(duration, window_s):
                    copies[f"cut/start{k}_{stem}.mp4"] = _reencode(p, Path(td) / f"start{k}_{stem}.mp4", CUT_CRF,
                                                                   start_s=k)
                    copies[f"cut/end{k}_{stem}.mp4"] = _reencode(p, Path(td) / f"end{k}_{stem}.mp4", CUT_CRF,
                                                                 duration_s=duration - k)
        files = {(Path(p).name if i < n_untouched else f"reencoded/{Path(p).name}"): p for i, p in enumerate(paths)}
        per_clip = {k: round(accusation_threshold(det.detect(p).to_dict()), 4) for k, p in {**files, **copies}.items()}
    quantile = None
    if args.forged_dev:  # 'real' only where few forgeries of the dev people score lower
        fakes = [str(Path(args.forged_dev) / f["file"]) for f in info["files"] if f["family"] != "real"]
        fake_p = [float(det.detect(p).fake_probability) for p in fakes]
        quantile = round(float(np.quantile(fake_p, args.miss_rate)), 4)
    path = folder / CALIBRATION_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if quantile is not None:
        data["real_below_method"] = (f"the {args.miss_rate:.0%} quantile of p(fake) over {len(fake_p)} forged dev clips "
                                     "(avdetect forge, every family): 'real' is claimed only below it")
    return _write_operating_point(path, data, per_clip, args.margin, quantile)


def summarise(rows: list[dict]) -> dict:
    from avdetect.metrics import PROTOCOLS, localization_metrics, roc_auc

    proto = PROTOCOLS["lavdf"]
    ok = [r for r in rows if "error" not in r]
    real = [r for r in ok if r["group"] == "real"]
    accused = lambda rs: sum(1 for r in rs if r["verdict"] == "fake" or r["segments"])  # noqa: E731

    def by_split(rs: list[dict]) -> dict:
        return {name: {"clips": len(g), "accused": accused(g), "verdict_fake": sum(r["verdict"] == "fake" for r in g),
                       "with_segments": sum(bool(r["segments"]) for r in g),
                       "unknown": sum(r["verdict"] == "unknown" for r in g), "p_max": max((r["p"] for r in g), default=None)}
                for name, g in (("test", [r for r in rs if r["split"] == "test"]), ("all", rs))}

    out: dict = {"errors": [(r["path"], r["error"]) for r in rows if "error" in r], "real": by_split(real)}
    copies = [r for r in ok if r["group"] == "real_reencoded"]
    if copies:
        out["real_reencoded"] = {**by_split(copies), "crf": copies[0]["crf"]}
    real_test = [r for r in real if r["split"] == "test"]
    out["families"] = {}
    for group in ("forged", "forged_trimmed"):
        g = [r for r in ok if r["group"] == group]
        neg = [r for r in g if r["family"] == "real"] + real_test
        for fam in sorted({r["family"] for r in g} - {"real"}):
            pos = [r for r in g if r["family"] == fam]
            rs = pos + neg
            labels = [1] * len(pos) + [0] * len(neg)
            auc = roc_auc(labels, [r["p"] for r in rs])
            props = [np.asarray(r["proposals"] or [[0.0, 0.0, 0.04]], float).reshape(-1, 3) for r in rs]
            gts = [np.asarray(r["truth"], float).reshape(-1, 2) for r in rs]
            loc = localization_metrics(props, gts, (0.5, 0.75), proto.ar_n_proposals[:1], proto.ar_iou_thresholds)
            out["families"].setdefault(fam, {})[group] = {
                "n": len(pos), "negatives": len(neg), "auc": auc, "ap@0.5": loc["ap"][0.5], "ap@0.75": loc["ap"][0.75],
                "detected": sum(r["verdict"] == "fake" for r in pos)}
    p_real = max((r["p"] for r in real_test), default=1.0)
    out["dev_fakes"] = {}
    for gen in sorted({r["family"] for r in ok if r["group"] == "dev_fakes"}):
        g = [r for r in ok if r["group"] == "dev_fakes" and r["family"] == gen]
        out["dev_fakes"][gen] = {"clips": len(g), "above_every_real_test": sum(r["p"] > p_real for r in g),
                                 "verdict_fake": sum(r["verdict"] == "fake" for r in g),
                                 "unknown": sum(r["verdict"] == "unknown" for r in g)}
    return out


def to_markdown(summaries: dict[str, dict]) -> str:
    names = list(summaries)
    lines = ["| real clips accused (verdict fake or a flagged segment) | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    crf = next((summaries[n]["real_reencoded"]["crf"] for n in names if "real_reencoded" in summaries[n]), None)
    groups = [("real", "")] + ([("real_reencoded", f", re-encoded at crf {crf}")] if crf is not None else [])
    for group, suffix in groups:
        for split in ("test", "all"):
            cells = []
            for n in names:
                r = summaries[n].get(group, {}).get(split)
                cells.append("-" if r is None else f"{r['accused']}/{r['clips']} (fake {r['verdict_fake']}, segments "
                             f"{r['with_segments']}, unknown {r['unknown']})")
            label = "held-out test people" if split == "test" else "all 32 real clips"
            lines.append(f"| {label}{suffix} | " + " | ".join(cells) + " |")
    lines += ["", "| family | run | " + " | ".join(f"{n} AUC / AP@0.5 / AP@0.75" for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
    fams = sorted({f for s in summaries.values() for f in s["families"]})
    for fam in fams:
        for group in ("forged", "forged_trimmed"):
            cells = []
            for n in names:
                m = summaries[n]["families"].get(fam, {}).get(group)
                cells.append("-" if m is None else f"{m['auc']:.2f} / {100 * m['ap@0.5']:.1f} / {100 * m['ap@0.75']:.1f}")
            lines.append(f"| {fam} | {'trimmed' if group.endswith('trimmed') else 'as is'} | " + " | ".join(cells) + " |")
    lines += ["", "| generator (dev_fakes) | " + " | ".join(f"{n}: above every real test clip / verdict fake" for n in names) + " |",
              "|---|" + "---|" * len(names)]
    gens = sorted({g for s in summaries.values() for g in s["dev_fakes"]})
    for gen in gens:
        cells = []
        for n in names:
            d = summaries[n]["dev_fakes"].get(gen)
            cells.append("-" if d is None else f"{d['above_every_real_test']}/{d['clips']} / {d['verdict_fake']}/{d['clips']}")
        lines.append(f"| {gen} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint name or folder (repeatable)")
    p.add_argument("--split-file", default="data_manifests/realfaces_split.json")
    p.add_argument("--base", default="../shared", help="folder the split file's roots are under")
    p.add_argument("--forged", help="an `avdetect forge` folder of the test people")
    p.add_argument("--dev-fakes", help="a folder of generated talking heads (file names start with the generator)")
    p.add_argument("--no-trim", dest="trim", action="store_false", help="skip the leading-silence-trimmed run")
    p.add_argument("--reencode", type=int, metavar="CRF", help="also detect a copy of every real clip re-encoded at "
                   "this H.264 crf (e.g. 28, as a messaging app sends it) and count its accusations")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--calibrate", action="store_true", help="first set the (one) checkpoint's threshold on the real "
                   "dev clips and write its calibration.json")
    p.add_argument("--forged-dev", help="with --calibrate: an `avdetect forge` folder of the dev people (its real "
                   "copies count as real dev clips too)")
    p.add_argument("--margin", type=float, default=0.02, help="with --calibrate: added to the highest dev value")
    p.add_argument("--miss-rate", type=float, default=0.1, help="with --calibrate and --forged-dev: real_below is "
                   "this quantile of the forged dev clips' p(fake) (default 0.1)")
    p.add_argument("--no-variants", dest="variants", action="store_false", help="with --calibrate: do not add "
                   "compressed (crf 32) and half-size copies and excerpts of the untouched dev clips")
    p.add_argument("--from-stored", action="store_true", help="with --calibrate: recompute threshold and real_below "
                   "from the dev values the checkpoint's calibration.json already holds (no detection)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.from_stored and not args.calibrate:
        p.error("--from-stored goes with --calibrate")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    summaries = {}
    try:
        if args.calibrate:
            if len(args.checkpoint) != 1:
                print("evaluate_real: error: --calibrate takes one checkpoint", file=sys.stderr)
                return 2
            cal = (recalibrate_stored(args.checkpoint[0], args.margin) if args.from_stored
                   else calibrate(args.checkpoint[0], args))
            print(f"threshold {cal['threshold']}: {cal['method']}")
            if "real_below" in cal:
                print(f"real_below {cal['real_below']}: {cal['real_below_method']}")
        for ck in args.checkpoint:
            name = Path(ck).name
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            summaries[name] = summarise(run_checkpoint(ck, args, folder))
    except AVDetectError as err:
        print(f"evaluate_real: error: {err}", file=sys.stderr)
        return 2
    (out / "summary.json").write_text(json.dumps(summaries, indent=1) + "\n", encoding="utf-8")
    md = to_markdown(summaries)
    (out / "summary.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
