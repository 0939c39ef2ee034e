"""Run a model over cached clips: stitched per-frame tracks, proposals, clip scores.

Used by validation and model selection during training, by ``recipes/evaluate.py`` and by
calibration. The windows are read from the cache and run through the same engine as
``detect`` (:mod:`avdetect.inference`: same windows, stitching and clip score), so a clip's
score here is the ``fake_probability`` that ``detect`` reports for the same file and
checkpoint. :func:`avdetect.localization.propose` turns the fused track (masked to the frames
with a face or audio, as in ``detect``) into ``[confidence, start_s, end_s]`` proposals (the
AV-Deepfake1M challenge format).

**Leading-silence trim** (DESIGN.md section 4): fakes in FakeAVCeleb and AV-Deepfake1M tend to
start with a short silence, a shortcut a detector can learn. With ``trim_silence=True`` the
frames before the first audible audio frame (:func:`leading_silence_frames`) are dropped
from the input; proposals are shifted back to the clip's time, and the clip score comes from
the rest alone. Evaluations report both runs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from avdetect.data.cache import FeatureCache
from avdetect.data.manifest import ManifestEntry
from avdetect.inference import MIN_FACE_COVERAGE, WindowEngine, WindowInputs, clip_score
from avdetect.localization import ProposalConfig, ScoreTrack, propose
from avdetect.timegrid import SAMPLES_PER_FRAME, frames_to_seconds

logger = logging.getLogger(__name__)


def leading_silence_frames(audio: np.ndarray, floor_db: float = -50.0, below_peak_db: float = 35.0) -> int:
    """Number of frames at the start whose RMS stays below ``max(floor_db, peak - below_peak_db)``
    dBFS (the peak being the loudest frame's RMS). 0 for silent or empty audio."""
    n = len(audio) // SAMPLES_PER_FRAME
    if n == 0:
        return 0
    rms = np.sqrt(np.mean(audio[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME).astype(np.float64) ** 2, axis=1))
    db = 20 * np.log10(rms + 1e-10)
    thr = max(floor_db, float(db.max()) - below_peak_db)
    loud = np.flatnonzero(db >= thr)
    if len(loud) == 0 or db.max() < floor_db:
        return 0
    return int(loud[0])


@dataclass
class ClipPrediction:
    file: str
    score: float  # clip-level fake probability
    proposals: np.ndarray  # (n, 3) [confidence, start_s, end_s]
    trimmed_s: float  # seconds of leading silence removed from the input (0 without trimming)


def cache_windows(cache: FeatureCache, file: str, starts: list[int], window: int, first: int = 0,
                  n_frames: int | None = None) -> Iterator[WindowInputs]:
    """The model's inputs for each window start of a cached clip, read from the cache (frames from
    ``first`` on, so window ``s`` covers cached frames ``[first + s, first + s + window)``)."""
    rec = cache.records[file]
    n = rec.n_frames - first if n_frames is None else n_frames
    for s in starts:
        e = min(n, s + window)
        w = cache.read(file, first + s, first + e)
        m = len(w.valid)
        yield WindowInputs(start=s, length=m, mouth=w.mouth, face=w.face, valid=w.valid if w.mouth is not None else None,
                           audio=w.audio, audio_valid=w.has_audio_frames if w.audio is not None else None)


def predict_clip(model, cache: FeatureCache, entry: ManifestEntry, *, hop: int | None = None, batch_size: int = 8,
                 device: str | torch.device = "cpu", trim_silence: bool = False,
                 proposal_config: ProposalConfig | None = None, amp: bool = False,
                 min_face_coverage: float = MIN_FACE_COVERAGE) -> ClipPrediction:
    """:func:`avdetect.inference.run_windows` over the cached clip's windows (``hop``: as detect's
    default, :func:`avdetect.inference.default_hop`), proposals of the fused track, and the clip
    score of :func:`avdetect.inference.clip_score`: what ``detect`` reports as ``fake_probability``."""
    window = int(model.config.window_frames)
    rec = cache.records[entry.file]
    first = 0
    if trim_silence and rec.has_audio:
        first = min(leading_silence_frames(cache.read(entry.file).audio), rec.n_frames - 1)
    length = rec.n_frames - first
    engine = WindowEngine(model, length, hop=hop, device=str(device), batch_size=batch_size, amp=amp)
    for w in cache_windows(cache, entry.file, engine.starts(), window, first):
        engine.add(w)
    result = engine.result()
    visual, audio = result.visual_present, result.audio_present
    score = clip_score(result, visual, audio, min_face_coverage)
    vmask = np.zeros(length, bool) if visual is None else visual
    amask = np.zeros(length, bool) if audio is None else audio
    fused = result.tracks["fused"]
    props = propose(ScoreTrack(frame=np.where(vmask | amask, fused.frame, 0.0), start=fused.start, end=fused.end,
                               start_dist=fused.start_dist, end_dist=fused.end_dist), proposal_config)
    offset = float(frames_to_seconds(first))
    if len(props):
        props = props + np.array([0.0, offset, offset])
    return ClipPrediction(entry.file, score.fake_probability, props, offset)


def predict_entries(model, cache: FeatureCache, entries: list[ManifestEntry], *, quiet: bool = True,
                    **kwargs) -> list[ClipPrediction]:
    """:func:`predict_clip` over every entry present in the cache (others are logged and skipped)."""
    from tqdm import tqdm

    out = []
    skipped = [e.file for e in entries if e.file not in cache]
    if skipped:
        logger.warning("%d clips are not in the cache and are not predicted, e.g. %s", len(skipped), skipped[0])
    model.eval()
    for e in tqdm([e for e in entries if e.file in cache], desc="predict", unit="clip", disable=quiet):
        out.append(predict_clip(model, cache, e, **kwargs))
    return out


def score_predictions(entries: list[ManifestEntry], preds: list[ClipPrediction], protocol: str = "lavdf") -> dict:
    """AP/AR (:func:`avdetect.metrics.localization_metrics`) against the entries' fake segments,
    and detection AUC / accuracy / EER, for the clips that were predicted. Per-category accuracy
    is named as each dataset names its categories (:func:`avdetect.data.formats.category_names`:
    FakeAVCeleb's folder names, AV-Deepfake1M's ``modify_type``). Unlabelled clips cannot be
    scored (:class:`DataFormatError`)."""
    from avdetect.data.formats import rename_category
    from avdetect.data.manifest import LABEL_UNKNOWN
    from avdetect.errors import DataFormatError
    from avdetect.metrics import PROTOCOLS, detection_metrics, localization_metrics

    proto = PROTOCOLS[protocol]
    by_file = {e.file: e for e in entries}
    unlabelled = [p.file for p in preds if by_file[p.file].label == LABEL_UNKNOWN]
    if unlabelled:
        raise DataFormatError(f"{len(unlabelled)} predicted clips have no label (e.g. {unlabelled[0]!r}): an "
                              "unlabelled split gives predictions, not metrics")
    gts = [np.asarray(by_file[p.file].fake_segments, dtype=np.float64).reshape(-1, 2) for p in preds]
    loc = localization_metrics([p.proposals if len(p.proposals) else np.zeros((0, 3)) for p in preds], gts,
                               proto.ap_iou_thresholds, proto.ar_n_proposals, proto.ar_iou_thresholds)
    labels = [by_file[p.file].label for p in preds]
    result = {"protocol": protocol, "n_videos": len(preds), "n_fake": int(sum(labels)),
              "n_segments": int(sum(len(g) for g in gts)), "ap": loc["ap"], "ar": loc["ar"]}
    if 0 < sum(labels) < len(labels):
        det = detection_metrics(labels, [p.score for p in preds],
                                categories=[rename_category(by_file[p.file].category, by_file[p.file].dataset)
                                            for p in preds])
        for k in ("auc", "accuracy", "eer", "category_accuracy"):
            if k in det:
                result[k] = det[k]
    return result
