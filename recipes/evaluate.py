"""Evaluate a checkpoint on a preprocessed manifest split; write predictions and metrics.

    python recipes/evaluate.py --checkpoint runs/lavdf/best --manifest data_manifests/lavdf.jsonl \
        --cache cache/lavdf --split test --protocol lavdf --out runs/lavdf/eval_test

Writes to ``--out``, for the plain run and the run with leading silence trimmed
(DESIGN.md section 4; suffix ``_trimmed``):

* ``predictions[_trimmed].json`` -- AV-Deepfake1M challenge format
  ``{file: [[confidence, start_s, end_s], ...]}`` (every file has at least one proposal, as
  the reference scorer requires);
* ``scores[_trimmed].txt`` -- detection lines ``file;score``;
* ``metadata.json`` -- the ground truth of the evaluated clips in AV-Deepfake1M form, so that
  ``avdetect evaluate --metadata metadata.json --predictions predictions.json`` (or the
  reference ``avdeepfake1m`` scorer) reproduces the numbers;
* ``metrics.json`` and ``metrics.txt`` -- AP/AR (and AUC / accuracy / EER) of both runs;
  per-category accuracy is named as the manifest's dataset names its categories (FakeAVCeleb's
  ``RealVideo-FakeAudio``..., AV-Deepfake1M's ``audio_modified``...).

**Unlabelled splits** (AV-Deepfake1M's ``test``: ``test_files.txt`` without labels) give no
metrics; the plain run is written as an AV-Deepfake1M challenge submission instead, in the formats
of the challenge page (https://deepfakes1m.github.io/details, "Task 1" / "Task 2") and of the
``avdeepfake1m`` SDK's scorers (``avdeepfake1m.evaluation.auc`` reads the text file with
``pd.read_csv(prediction_file, header=None, sep=";")``; ``ap_ar_1d`` reads the JSON):

* ``submission/classification.txt`` -- Task 1, one line ``file;score`` per clip (``000001.mp4;0.9128``),
  the score being the clip's probability of being fake;
* ``submission/localization.json`` -- Task 2, ``{"000001.mp4": [[confidence, start_s, end_s], ...]}``,
  proposals in descending confidence, times in seconds;
* ``submission/missing.txt`` -- clips of the split without a prediction (not in the cache: failed
  or not preprocessed), when there are any: the submission is then incomplete (a warning says so).

With ``--write-calibration`` (on a dev split holding real and fake clips) the equal-error-rate
threshold of the clip score is also written to ``calibration.json`` in the checkpoint folder, the
operating point ``avdetect detect`` then uses by default (the file's other keys are kept). The clip
score evaluated here is the one ``detect`` reports (``fake_probability``): both run
:mod:`avdetect.inference`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from avdetect.data.cache import FeatureCache
from avdetect.data.dataset import complete_segments
from avdetect.data.manifest import LABEL_UNKNOWN, read_manifest, sample_entries
from avdetect.data.predict import predict_entries
from avdetect.errors import AVDetectError, DataFormatError
from avdetect.evaluation import evaluate_files, format_table
from avdetect.models import AVDetector
from avdetect.vocab import modify_type_of

logger = logging.getLogger("recipes.evaluate")


def write_ground_truth(entries, path: Path) -> None:
    """The evaluated clips' truth as an AV-Deepfake1M metadata file (read by avdetect.evaluation)."""
    rows = [{"file": e.file, "original": None, "split": e.split, "modify_type": modify_type_of(e.modify_video, e.modify_audio), "audio_model": "",
             "fake_segments": e.fake_segments, "visual_fake_segments": e.visual_segments,
             "audio_fake_segments": e.audio_segments, "video_frames": None, "audio_frames": None} for e in entries]
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def _proposal_rows(p) -> list[list[float]]:
    rows = p.proposals.tolist() if len(p.proposals) else [[0.0, 0.0, 0.04]]  # the reference needs >= 1
    return [[round(c, 6), round(s, 4), round(e, 4)] for c, s, e in rows]


def write_submission(preds, split_entries, outdir: Path) -> dict:
    """The AV-Deepfake1M challenge files of ``preds`` (module docstring) under ``outdir/submission``."""
    sub = outdir / "submission"
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "localization.json").write_text(json.dumps({p.file: _proposal_rows(p) for p in preds}) + "\n",
                                           encoding="utf-8")
    (sub / "classification.txt").write_text("".join(f"{p.file};{p.score:.6f}\n" for p in preds), encoding="utf-8")
    done = {p.file for p in preds}
    missing = [e.file for e in split_entries if e.file not in done]
    if missing:
        (sub / "missing.txt").write_text("".join(f"{m}\n" for m in missing), encoding="utf-8")
        logger.warning("the submission is incomplete: %d of %d clips have no prediction (not in the cache), listed in "
                       "%s", len(missing), len(split_entries), sub / "missing.txt")
    elif (sub / "missing.txt").exists():
        (sub / "missing.txt").unlink()
    return {"folder": str(sub), "n_clips": len(preds), "missing": len(missing), "complete": not missing}


def evaluate(checkpoint: str, manifest: str, cache_dir: str, out: str, split: str | None = "test",
             protocol: str = "lavdf", device: str = "auto", hop: int | None = None, batch_size: int = 8,
             trim: bool = True, quiet: bool = False, max_clips: int | None = None, seed: int = 0) -> dict:
    dev = torch.device("cuda" if (device == "auto" and torch.cuda.is_available()) or device == "cuda" else "cpu")
    split_entries = read_manifest(manifest, split=split)  # names the manifest's splits if there is no such one
    model = AVDetector.from_pretrained(checkpoint, map_location=dev, inference_only=True)  # (no transformers import)
    cache = FeatureCache(cache_dir, model_config=model.config)  # crop and decode sizes checked
    entries = complete_segments([e for e in split_entries if e.file in cache], cache)
    if max_clips:
        entries = sample_entries(entries, max_clips, seed=seed)  # seeded, stratified by label and category
    if not entries:
        raise DataFormatError(f"no clip of split {split!r} is in the cache {cache_dir}", manifest)
    unlabelled = sum(e.label == LABEL_UNKNOWN for e in entries)
    if unlabelled and unlabelled < len(entries):
        raise DataFormatError(f"split {split!r} mixes {unlabelled} unlabelled and {len(entries) - unlabelled} labelled "
                              "clips: evaluate them apart", manifest)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"checkpoint": str(checkpoint), "manifest": str(manifest), "split": split, "n_clips": len(entries),
                     "labelled": not unlabelled}
    if unlabelled:
        logger.info("split %r has no labels: writing a challenge submission, no metrics", split)
        preds = predict_entries(model, cache, entries, device=dev, hop=hop, batch_size=batch_size, quiet=quiet)
        results["submission"] = write_submission(preds, split_entries if not max_clips else entries, outdir)
        text = (f"split {split!r}: {len(preds)} clips without labels predicted; challenge submission in "
                f"{results['submission']['folder']}" + ("" if results["submission"]["complete"] else
                                                        f" ({results['submission']['missing']} clips missing)"))
        (outdir / "metrics.json").write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
        results["table"] = text
        return results
    write_ground_truth(entries, outdir / "metadata.json")
    # per-category accuracy named as the dataset names its categories: AV-Deepfake1M's modify_type,
    # else the category (folder) names of FakeAVCeleb, which are also the model's (avdetect.vocab)
    naming = "av1m" if {e.dataset for e in entries} == {"av1m"} else "fakeavceleb"
    tables = []
    for name, trim_silence in (("plain", False), ("trimmed", True)) if trim else (("plain", False),):
        # no autocast: the scores must be the ones detect computes (float32), calibration reads them
        preds = predict_entries(model, cache, entries, device=dev, hop=hop, batch_size=batch_size,
                                trim_silence=trim_silence, quiet=quiet)
        suffix = "" if name == "plain" else "_trimmed"
        props = {p.file: _proposal_rows(p) for p in preds}
        pred_path = outdir / f"predictions{suffix}.json"
        pred_path.write_text(json.dumps(props) + "\n", encoding="utf-8")
        score_path = outdir / f"scores{suffix}.txt"
        score_path.write_text("".join(f"{p.file};{p.score:.6f}\n" for p in preds), encoding="utf-8")
        has_fake = any(e.label for e in entries) and not all(e.label for e in entries)
        res = evaluate_files(outdir / "metadata.json", predictions_path=pred_path,
                             scores_path=score_path if has_fake else None, protocol=protocol, category_naming=naming)
        res["mean_trimmed_s"] = float(np.mean([p.trimmed_s for p in preds]))
        results[name] = res
        tables.append(f"== {name} run" + (" (leading silence trimmed, mean "
                                           f"{res['mean_trimmed_s']:.2f} s)" if trim_silence else "") + "\n"
                      + format_table(res))
    (outdir / "metrics.json").write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    text = "\n\n".join(tables)
    (outdir / "metrics.txt").write_text(text + "\n", encoding="utf-8")
    results["table"] = text
    return results


def write_calibration(checkpoint: str | Path, results: dict) -> Path:
    """Write the plain run's equal-error-rate clip-score threshold to ``<checkpoint>/calibration.json``.

    The clip score is detect's ``fake_probability`` (:func:`avdetect.inference.clip_score`). The
    file's other keys (``warning``, ``domain``, ``real_below``) are kept; a ``real_below`` above
    the new threshold is lowered to it (read_calibration requires real_below <= threshold)."""
    from avdetect.checkpoints import CALIBRATION_FILE

    plain = results.get("plain", {})
    thr = plain.get("eer_threshold")
    if thr is None or not np.isfinite(thr):
        raise DataFormatError(f"calibration needs real and fake clips in the evaluated split {results.get('split')!r}",
                              results.get("manifest", ""))
    path = Path(checkpoint) / CALIBRATION_FILE
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data = {
        **old,
        "threshold": round(float(min(0.99, max(0.01, thr))), 4),
        "method": (f"equal-error-rate threshold of the clip score on split {results.get('split') or 'all'} of "
                   f"{Path(results['manifest']).name} ({results['n_clips']} clips; EER {plain['eer']:.4f}; "
                   f"measured {thr:.4f}), written by recipes/evaluate.py"),
    }
    if data.get("real_below") is not None and float(data["real_below"]) > data["threshold"]:
        logger.warning("real_below %.4f was above the new threshold: lowered to it", float(data["real_below"]))
        data["real_below"] = data["threshold"]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (config.json + model.safetensors)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--cache", required=True, help="preprocessing cache of the manifest")
    p.add_argument("--split", default="test", help="manifest split to evaluate (default test; 'all' for every clip)")
    p.add_argument("--protocol", default="lavdf", choices=["lavdf", "av1m"])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--hop", type=int, help="frames between window starts (default: detect's, 3/4 of the model's window)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-clips", type=int, help="evaluate N clips only, a seeded sample stratified by label and "
                   "category (smoke runs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --max-clips sample (default 0)")
    p.add_argument("--no-trim", action="store_true", help="skip the leading-silence-trimmed run")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--write-calibration", action="store_true",
                   help="write the EER threshold of the clip score to <checkpoint>/calibration.json (use a dev split)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        res = evaluate(args.checkpoint, args.manifest, args.cache, args.out, None if args.split == "all" else args.split,
                       args.protocol, args.device, args.hop, args.batch_size, not args.no_trim, args.quiet,
                       args.max_clips, args.seed)
        if args.write_calibration:
            cal = write_calibration(args.checkpoint, res)
    except AVDetectError as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 2
    print(res["table"])
    if args.write_calibration:
        print(f"calibration: threshold {json.loads(cal.read_text())['threshold']} written to {cal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
