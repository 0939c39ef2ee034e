"""Score prediction files against a benchmark's ground truth with :mod:`avdetect.metrics`.

The file formats (ground truth of LAV-DF / AV-Deepfake1M / FakeAVCeleb, localisation
predictions, detection scores) are parsed by :mod:`avdetect.data.formats`; its names
(:func:`read_metadata`, :func:`read_predictions`, :func:`read_scores`, :class:`Metadata`,
:class:`VideoLabel`, :data:`AV1M_TARGETS`) stay importable from here. Every problem with a
file raises :class:`avdetect.errors.DataFormatError` naming the file and the entry.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from avdetect.data.formats import (
    AV1M_TARGETS,
    FAKEAVCELEB_SEED,
    Metadata,
    VideoLabel,
    category_names,
    read_metadata,
    read_predictions,
    read_scores,
    rename_category,
)
from avdetect.errors import ConfigError, DataFormatError
from avdetect.timegrid import FPS
from avdetect.metrics import (
    LAVDF_SUBSETS,
    PROTOCOLS,
    detection_metrics,
    lavdf_subset_mask,
    localization_metrics,
)

__all__ = ["AV1M_TARGETS", "Metadata", "VideoLabel", "category_names", "evaluate_files", "format_table",
           "read_metadata", "read_predictions", "read_scores"]

logger = logging.getLogger(__name__)


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


#: A proposal ending this long after its clip's end (seconds) counts as "past the end".
PAST_END_TOLERANCE_S = 1.0


def _proposals_past_end(preds: dict, videos: list[VideoLabel]) -> tuple[int, int, float | None]:
    """(videos whose proposals end after the clip by more than PAST_END_TOLERANCE_S, videos with a
    known duration, median ratio of the latest end to the duration over the former)."""
    known = [v for v in videos if v.duration and v.duration > 0 and len(preds.get(v.file, ()))]
    ratios = [float(preds[v.file][:, 2].max()) / v.duration for v in known
              if float(preds[v.file][:, 2].max()) > v.duration + PAST_END_TOLERANCE_S]
    return len(ratios), len(known), (float(np.median(ratios)) if ratios else None)


def evaluate_files(
    metadata_path: str | Path,
    predictions_path: str | Path | None = None,
    scores_path: str | Path | None = None,
    protocol: str | None = None,
    split: str | None = None,
    subset: str = "full",
    target: str = "fake",
    threshold: float = 0.5,
    units: str = "seconds",
    fps: float = FPS,
    category_naming: str | None = None,
    fakeavceleb_seed: int = FAKEAVCELEB_SEED,
) -> dict:
    """Score prediction files against a ground-truth file.

    Returns a dict with ``protocol``, ``dataset``, ``n_videos``, and, when predictions are
    given, ``ap`` ({iou: value}), ``ar`` ({n: value}) and ``proposals_past_end`` (videos whose
    proposals end more than a second after the clip: predictions in frames read as seconds, a
    warning is logged); when scores are given, ``auc``, ``accuracy``, ``eer`` (and
    ``category_accuracy`` for FakeAVCeleb and AV-Deepfake1M, named as the metadata names its
    categories, or as ``category_naming`` says: ``fakeavceleb`` folder names / ``av1m``
    ``modify_type`` names). ``units``/``fps``: the predictions' time unit (``frames`` for LAV-DF's
    own BA-TFD output, frame numbers at ``fps``). FakeAVCeleb's ``meta_data.csv`` has no split
    column: its videos get the manifest's subject-disjoint split (seed ``fakeavceleb_seed``).
    Every video of the (selected part of the) metadata must be in each given file; extra
    entries in the prediction files are ignored with a log message.
    """
    if predictions_path is None and scores_path is None:
        raise DataFormatError("nothing to evaluate: give predictions and/or detection scores", metadata_path)
    if category_naming not in (None, "fakeavceleb", "av1m"):
        raise ConfigError(f"unknown category naming {category_naming!r}; choose fakeavceleb or av1m")
    meta = read_metadata(metadata_path, target=target, fakeavceleb_seed=fakeavceleb_seed)
    videos = meta.videos
    if split is not None:
        videos = [v for v in videos if v.split == split]
        if not videos:
            present = sorted({str(v.split) for v in meta.videos})
            raise DataFormatError(f"no video of split {split!r}; the metadata's splits are {', '.join(present)}",
                                  metadata_path)
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
        preds = read_predictions(predictions_path, units=units, fps=fps)
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
        past, known, ratio = _proposals_past_end(preds, videos)
        result["units"] = units
        result["proposals_past_end"] = past
        if past:
            hint = (f"; if they are frame numbers (LAV-DF's BA-TFD writes frames), use --units frames --fps {FPS}"
                    if units == "seconds" else "; check --fps")
            logger.warning("%s: %d of %d videos have proposals ending more than %g s after the clip (median latest end "
                           "%.1f x the duration): these predictions do not look like %s%s", predictions_path, past,
                           known, PAST_END_TOLERANCE_S, ratio, units, hint)

    if scores_path is not None:
        scores = read_scores(scores_path)
        vals = [_lookup(scores, v.file) for v in videos]
        missing = [v.file for v, s in zip(videos, vals) if s is None]
        if missing:
            raise _missing_error("score", scores_path, missing, meta, split)
        naming = category_naming or meta.format
        cats = [rename_category(v.category, naming) for v in videos]
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
