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

from avdetect.data.formats import AV1M_TARGETS, Metadata, VideoLabel, read_metadata, read_predictions, read_scores
from avdetect.errors import DataFormatError
from avdetect.metrics import (
    LAVDF_SUBSETS,
    PROTOCOLS,
    detection_metrics,
    lavdf_subset_mask,
    localization_metrics,
)

__all__ = ["AV1M_TARGETS", "Metadata", "VideoLabel", "evaluate_files", "format_table", "read_metadata",
           "read_predictions", "read_scores"]

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
