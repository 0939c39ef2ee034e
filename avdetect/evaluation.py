"""Read the benchmarks' files and score predictions with :mod:`avdetect.metrics`.

Formats (DESIGN.md section 4), all times in seconds:

* predictions for localisation (AV-Deepfake1M challenge format): JSON
  ``{file: [[confidence, start_s, end_s], ...], ...}``, proposals in ranked order;
* detection scores: text lines ``file;score`` (higher = more likely fake);
* ground truth: LAV-DF ``metadata.json`` (entries with ``fake_periods``, ``modify_video``,
  ``modify_audio``), AV-Deepfake1M ``{split}_metadata.json`` (entries with ``fake_segments``,
  ``visual_fake_segments``, ``audio_fake_segments``, ``modify_type``) -- told apart by their
  fields -- or FakeAVCeleb ``meta_data.csv`` (detection only; the video key is
  ``<category>/<race>/<gender>/<id>/<file>``, the directory column without a leading
  ``FakeAVCeleb/``).

Every problem with a file raises :class:`avdetect.errors.DataFormatError` naming the file and
the entry.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avdetect.errors import DataFormatError
from avdetect.timegrid import FPS
from avdetect.metrics import (
    LAVDF_SUBSETS,
    PROTOCOLS,
    detection_metrics,
    lavdf_subset_mask,
    localization_metrics,
)

logger = logging.getLogger(__name__)

FAKEAVCELEB_CATEGORIES = ("RealVideo-RealAudio", "RealVideo-FakeAudio", "FakeVideo-RealAudio", "FakeVideo-FakeAudio")
AV1M_TARGETS = {"fake": "fake_segments", "visual": "visual_fake_segments", "audio": "audio_fake_segments"}


@dataclass
class VideoLabel:
    """Ground truth of one video, whatever file it came from."""

    file: str
    segments: np.ndarray  # (n, 2) seconds: the segments scored (fake, or one modality's)
    is_fake: bool
    split: str | None = None
    modify_video: bool = False
    modify_audio: bool = False
    category: str | None = None  # FakeAVCeleb folder name / AV-Deepfake1M modify_type
    extra_segments: dict[str, np.ndarray] = field(default_factory=dict)  # AV-Deepfake1M: "visual", "audio"
    duration: float | None = None  # seconds: LAV-DF 'duration', AV-Deepfake1M video_frames / 25


@dataclass
class Metadata:
    """A parsed ground-truth file: its format name and one label per video, in file order."""

    path: str
    format: str  # "lavdf" | "av1m" | "fakeavceleb"
    videos: list[VideoLabel]


# ---------------------------------------------------------------------------------------
# low-level readers
def _read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError("file not found", p) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"cannot read: {err}", p) from None


def _parse_json(text: str, path: str | Path):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"not valid JSON: {err}", path) from None


def _read_json(path: str | Path):
    return _parse_json(_read_text(path), path)


def _number(x, path, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise DataFormatError(f"{where}: expected a number, got {x!r}", path)
    v = float(x)
    if not math.isfinite(v):
        raise DataFormatError(f"{where}: value {x!r} is not finite", path)
    return v


def _segments(value, path, where: str) -> np.ndarray:
    """Validate a list of [start, end] pairs (seconds) -> (n, 2) float64."""
    if not isinstance(value, list):
        raise DataFormatError(f"{where}: expected a list of [start, end] pairs, got {type(value).__name__}", path)
    out = np.zeros((len(value), 2))
    for i, seg in enumerate(value):
        w = f"{where} segment {i}"
        if not isinstance(seg, (list, tuple)) or len(seg) != 2:
            raise DataFormatError(f"{w}: expected [start, end], got {seg!r}", path)
        s, e = _number(seg[0], path, w), _number(seg[1], path, w)
        if s > e:
            raise DataFormatError(f"{w}: start {s} > end {e}", path)
        out[i] = s, e
    return out


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Localisation predictions -> {file: (n, 3) float64 [confidence, start_s, end_s]}, order kept."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataFormatError(f"expected a JSON object {{file: [[confidence, start, end], ...]}}, got {type(data).__name__}", path)
    out: dict[str, np.ndarray] = {}
    for name, rows in data.items():
        where = f"entry {name!r}"
        if not isinstance(rows, list):
            raise DataFormatError(f"{where}: expected a list of [confidence, start, end], got {type(rows).__name__}", path)
        # Fast path: a well-formed entry converts to an (n, 3) numeric array in one call.
        try:
            fast = np.array(rows) if rows else np.zeros((0, 3))
        except ValueError:  # ragged rows
            fast = None
        if (
            fast is not None and fast.ndim == 2 and fast.shape[1] == 3 and fast.dtype.kind in "if"
            and np.isfinite(fast).all() and (fast[:, 1] <= fast[:, 2]).all()
        ):
            out[str(name)] = fast.astype(np.float64, copy=False)
            continue
        # Slow path: find the offending proposal and say what is wrong with it.
        arr = np.zeros((len(rows), 3))
        for i, row in enumerate(rows):
            w = f"{where} proposal {i}"
            if not isinstance(row, (list, tuple)) or len(row) != 3:
                raise DataFormatError(f"{w}: expected [confidence, start, end], got {row!r}", path)
            c, s, e = (_number(x, path, w) for x in row)
            if s > e:
                raise DataFormatError(f"{w}: start {s} > end {e}", path)
            arr[i] = c, s, e
        out[str(name)] = arr
    return out


def read_scores(path: str | Path) -> dict[str, float]:
    """Detection scores, one ``file;score`` per line (blank lines ignored) -> {file: score}."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataFormatError("file not found", p) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"cannot read: {err}", p) from None
    out: dict[str, float] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        name, sep, value = line.strip().rpartition(";")
        if not sep or not name:
            raise DataFormatError(f"line {n}: expected 'file;score', got {line!r}", p)
        try:
            score = float(value)
        except ValueError:
            raise DataFormatError(f"line {n}: score {value!r} is not a number", p) from None
        if not math.isfinite(score):
            raise DataFormatError(f"line {n}: score {value!r} is not finite", p)
        if name in out:
            raise DataFormatError(f"line {n}: file {name!r} appears twice", p)
        out[name] = score
    if not out:
        raise DataFormatError("no 'file;score' lines", p)
    return out


# ---------------------------------------------------------------------------------------
# metadata
def _bool(entry: dict, key: str, path, where: str) -> bool:
    v = entry.get(key)
    if not isinstance(v, bool):
        raise DataFormatError(f"{where}: field {key!r} must be true or false, got {v!r}", path)
    return v


def _read_fakeavceleb_csv(path: Path) -> Metadata:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"cannot read: {err}", path) from None
    if not rows:
        raise DataFormatError("empty CSV", path)
    header = [h.strip() for h in rows[0]]
    if "type" not in header:
        raise DataFormatError(f"not a FakeAVCeleb meta_data.csv: header {header} has no 'type' column", path)
    i_type = header.index("type")
    videos = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        # The header names 9 columns, the rows carry 10: ..., file name, directory.
        if len(row) < 10:
            raise DataFormatError(f"line {n}: expected 10 values (..., file name, directory), got {len(row)}", path)
        category, fname, directory = row[i_type].strip(), row[-2].strip(), row[-1].strip()
        if category not in FAKEAVCELEB_CATEGORIES:
            raise DataFormatError(f"line {n}: unknown type {category!r}", path)
        parts = [q for q in directory.replace("\\", "/").split("/") if q]
        if parts and parts[0] == "FakeAVCeleb":
            parts = parts[1:]
        videos.append(
            VideoLabel(
                file="/".join([*parts, fname]),
                segments=np.zeros((0, 2)),
                is_fake=category != "RealVideo-RealAudio",
                modify_video=category.startswith("FakeVideo"),
                modify_audio=category.endswith("FakeAudio"),
                category=category,
            )
        )
    return Metadata(str(path), "fakeavceleb", videos)


def read_metadata(path: str | Path, target: str = "fake") -> Metadata:
    """Parse a ground-truth file; the format is recognised from its fields (see module docstring).

    ``target`` picks, for AV-Deepfake1M, which segments are scored: ``fake`` (all),
    ``visual`` or ``audio``.
    """
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return _read_fakeavceleb_csv(p)
    data = _read_json(p)
    if not isinstance(data, list) or not data:
        raise DataFormatError("expected a non-empty JSON list of video entries", p)
    first = data[0]
    if not isinstance(first, dict):
        raise DataFormatError(f"entry 0: expected an object, got {type(first).__name__}", p)
    if "fake_periods" in first:
        fmt = "lavdf"
    elif "fake_segments" in first:
        fmt = "av1m"
    else:
        raise DataFormatError("entry 0: neither 'fake_periods' (LAV-DF) nor 'fake_segments' (AV-Deepfake1M) present", p)
    if target not in AV1M_TARGETS:
        raise DataFormatError(f"unknown target {target!r}; choose one of {sorted(AV1M_TARGETS)}", p)
    if fmt == "lavdf" and target != "fake":
        raise DataFormatError("LAV-DF metadata has only 'fake_periods': use the visual_only / audio_only subsets instead of a target", p)

    videos: list[VideoLabel] = []
    seen: set[str] = set()
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise DataFormatError(f"entry {i}: expected an object, got {type(entry).__name__}", p)
        name = entry.get("file")
        if not isinstance(name, str) or not name:
            raise DataFormatError(f"entry {i}: missing or empty 'file'", p)
        where = f"entry {i} ({name!r})"
        if name in seen:
            raise DataFormatError(f"{where}: file listed twice", p)
        seen.add(name)
        split = entry.get("split")
        if fmt == "lavdf":
            if "fake_periods" not in entry:
                raise DataFormatError(f"{where}: missing 'fake_periods'", p)
            segs = _segments(entry["fake_periods"], p, f"{where} fake_periods")
            dur = entry.get("duration")
            videos.append(
                VideoLabel(
                    file=name, segments=segs, is_fake=len(segs) > 0, split=split,
                    modify_video=_bool(entry, "modify_video", p, where),
                    modify_audio=_bool(entry, "modify_audio", p, where),
                    duration=_number(dur, p, f"{where} duration") if dur is not None else None,
                )
            )
        else:
            key = AV1M_TARGETS[target]
            for k in {key, "fake_segments"}:
                if k not in entry:
                    raise DataFormatError(f"{where}: missing {k!r}", p)
            segs = _segments(entry[key], p, f"{where} {key}")
            fake = _segments(entry["fake_segments"], p, f"{where} fake_segments") if key != "fake_segments" else segs
            mtype = entry.get("modify_type")
            extra = {m: _segments(entry[k], p, f"{where} {k}") for m, k in (("visual", "visual_fake_segments"),
                                                                           ("audio", "audio_fake_segments")) if k in entry}
            vf = entry.get("video_frames")
            videos.append(
                VideoLabel(
                    file=name, segments=segs, is_fake=len(fake) > 0, split=split,
                    modify_video=mtype in ("visual_modified", "both_modified"),
                    modify_audio=mtype in ("audio_modified", "both_modified"),
                    category=mtype if isinstance(mtype, str) else None,
                    extra_segments=extra,
                    duration=_number(vf, p, f"{where} video_frames") / FPS if vf is not None else None,
                )
            )
    return Metadata(str(p), fmt, videos)


# ---------------------------------------------------------------------------------------
def _lookup(table: dict, name: str):
    if name in table:
        return table[name]
    alt = name[len("FakeAVCeleb/"):] if name.startswith("FakeAVCeleb/") else "FakeAVCeleb/" + name
    return table.get(alt)


def _missing_error(kind: str, path, missing: list[str], meta: Metadata, split: str | None) -> DataFormatError:
    shown = ", ".join(repr(m) for m in missing[:3]) + (" ..." if len(missing) > 3 else "")
    hint = ""
    splits = {v.split for v in meta.videos if v.split}
    if split is None and len(splits) > 1:
        hint = f" (the metadata holds splits {sorted(splits)}: choose one with --split)"
    return DataFormatError(f"{len(missing)} of the metadata's videos have no {kind}: {shown}{hint}", path)


def evaluate_files(
    metadata_path: str | Path,
    predictions_path: str | Path | None = None,
    scores_path: str | Path | None = None,
    protocol: str | None = None,
    split: str | None = None,
    subset: str = "full",
    target: str = "fake",
    threshold: float = 0.5,
) -> dict:
    """Score prediction files against a ground-truth file.

    Returns a dict with ``protocol``, ``dataset``, ``n_videos``, and, when predictions are
    given, ``ap`` ({iou: value}) and ``ar`` ({n: value}); when scores are given, ``auc``,
    ``accuracy``, ``eer`` (and ``category_accuracy`` for FakeAVCeleb and AV-Deepfake1M).
    Every video of the (selected part of the) metadata must be in each given file; extra
    entries in the prediction files are ignored with a log message.
    """
    if predictions_path is None and scores_path is None:
        raise DataFormatError("nothing to evaluate: give predictions and/or detection scores", metadata_path)
    meta = read_metadata(metadata_path, target=target)
    videos = meta.videos
    if split is not None:
        videos = [v for v in videos if v.split == split]
        if not videos:
            raise DataFormatError(f"no video of split {split!r}", metadata_path)
    if subset != "full":
        if meta.format != "lavdf":
            raise DataFormatError(f"subset {subset!r} is defined for LAV-DF metadata only", metadata_path)
        if subset not in LAVDF_SUBSETS:
            raise DataFormatError(f"unknown subset {subset!r}; choose one of {LAVDF_SUBSETS}", metadata_path)
        mask = lavdf_subset_mask([v.modify_video for v in videos], [v.modify_audio for v in videos], subset)
        videos = [v for v, keep in zip(videos, mask) if keep]
    proto_name = protocol or ("av1m" if meta.format == "av1m" else "lavdf")
    if proto_name not in PROTOCOLS:
        raise DataFormatError(f"unknown protocol {proto_name!r}; choose one of {sorted(PROTOCOLS)}", metadata_path)
    proto = PROTOCOLS[proto_name]
    result: dict = {
        "protocol": proto_name, "dataset": meta.format, "split": split, "subset": subset,
        "target": target, "n_videos": len(videos), "n_fake": int(sum(v.is_fake for v in videos)),
    }

    if predictions_path is not None:
        if meta.format == "fakeavceleb":
            raise DataFormatError("FakeAVCeleb has no temporal labels: evaluate detection scores (--scores) only", metadata_path)
        preds = read_predictions(predictions_path)
        missing = [v.file for v in videos if v.file not in preds]
        if missing:
            raise _missing_error("proposals", predictions_path, missing, meta, split)
        extra = len(preds) - len(videos)
        if extra > 0:
            logger.info("%s: %d entries not in the evaluated metadata are ignored", predictions_path, extra)
        loc = localization_metrics(
            [preds[v.file] for v in videos], [v.segments for v in videos],
            proto.ap_iou_thresholds, proto.ar_n_proposals, proto.ar_iou_thresholds,
        )
        result["n_segments"] = int(sum(len(v.segments) for v in videos))
        result["ap"], result["ar"] = loc["ap"], loc["ar"]

    if scores_path is not None:
        scores = read_scores(scores_path)
        vals = [_lookup(scores, v.file) for v in videos]
        missing = [v.file for v, s in zip(videos, vals) if s is None]
        if missing:
            raise _missing_error("score", scores_path, missing, meta, split)
        cats = [v.category for v in videos]
        det = detection_metrics(
            [v.is_fake for v in videos], vals, threshold=threshold,
            categories=cats if all(c is not None for c in cats) else None,
        )
        for k in ("auc", "accuracy", "threshold", "eer", "eer_threshold", "category_accuracy"):
            if k in det:
                result[k] = det[k]
    return result


def format_table(result: dict) -> str:
    """Human-readable table of an :func:`evaluate_files` result (percentages, as papers print)."""

    def pct(x) -> str:
        return "  n/a " if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:6.2f}"

    head = f"{result['dataset']} metadata, {result['protocol']} protocol: {result['n_videos']} videos ({result['n_fake']} fake)"
    if result.get("split"):
        head += f", split {result['split']}"
    if result.get("subset", "full") != "full":
        head += f", subset {result['subset']}"
    if result.get("target", "fake") != "fake":
        head += f", {result['target']} segments"
    lines = [head]
    if "ap" in result:
        lines.append(f"segments: {result['n_segments']}")
        lines.append("  ".join(f"AP@{k:<5g}" for k in result["ap"]) + "  |  " + "  ".join(f"AR@{k:<4d}" for k in result["ar"]))
        lines.append("  ".join(f"{pct(v):>8s}" for v in result["ap"].values()) + "  |  " + "  ".join(f"{pct(v):>7s}" for v in result["ar"].values()))
    if "auc" in result:
        lines.append(f"AUC {pct(result['auc'])}   ACC@{result['threshold']:g} {pct(result['accuracy'])}   EER {pct(result['eer'])} (at score {result['eer_threshold']:.4g})")
        for cat, acc in result.get("category_accuracy", {}).items():
            lines.append(f"  ACC {cat:<22s} {pct(acc)}")
    return "\n".join(lines)
