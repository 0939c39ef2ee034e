"""Run a model over cached clips: stitched per-frame tracks, proposals, clip scores.

Used by validation during training and by ``recipes/evaluate.py``. Each clip is cut into
windows of the model's length (``overlap`` frames shared by neighbours), the windows' tracks
are merged with :class:`avdetect.localization.TrackStitcher`, and
:func:`avdetect.localization.propose` turns the fused track into ``[confidence, start_s,
end_s]`` proposals (the AV-Deepfake1M challenge format).

**Leading-silence trim** (DESIGN.md section 4): fakes in FakeAVCeleb and AV-Deepfake1M tend to
start with a short silence, a shortcut a detector can learn. With ``trim_silence=True`` the
frames before the first audible audio frame (:func:`leading_silence_frames`) are dropped
from the input; proposals are shifted back to the clip's time, and the clip score comes from
the rest alone. Evaluations report both runs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from avdetect.data.cache import FeatureCache
from avdetect.data.manifest import ManifestEntry
from avdetect.localization import ProposalConfig, ScoreTrack, TrackStitcher, propose
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


@torch.no_grad()
def predict_clip(model, cache: FeatureCache, entry: ManifestEntry, *, overlap: int = 25, batch_size: int = 8,
                 device: str | torch.device = "cpu", trim_silence: bool = False,
                 proposal_config: ProposalConfig | None = None, amp: bool = False) -> ClipPrediction:
    """Windows -> stitched fused track -> proposals and a clip score (mean over windows of the
    clip probability, weighted by the windows' valid frames)."""
    window = int(model.config.window_frames)
    use_face = bool(model.config.visual.use_face)
    rec = cache.records[entry.file]
    n = rec.n_frames
    first = 0
    if trim_silence and rec.has_audio:
        audio = cache.read(entry.file).audio
        first = min(leading_silence_frames(audio), n - 1)
    length = n - first
    step = max(1, window - overlap)
    starts = list(range(0, max(1, length - window + 1), step))
    if starts[-1] + window < length:
        starts.append(length - window)
    stitcher = TrackStitcher(length, taper=min(overlap, window // 4))
    clip_probs, clip_w = [], []
    for b0 in range(0, len(starts), batch_size):
        chunk = starts[b0:b0 + batch_size]
        mouths, faces, audios, vms, ams, lens = [], [], [], [], [], []
        for s in chunk:
            w = cache.read(entry.file, first + s, first + s + window)
            m = len(w.valid)
            lens.append(m)
            vm = np.zeros(window, bool)
            vm[:m] = w.valid
            am = np.zeros(window, bool)
            if w.mouth is not None:
                mo = np.zeros((window, *w.mouth.shape[1:]), np.uint8)
                mo[:m] = w.mouth
                mouths.append(mo)
            if use_face and w.face is not None:
                fa = np.zeros((window, *w.face.shape[1:]), np.uint8)
                fa[:m] = w.face
                faces.append(fa)
            if w.audio is not None:
                au = np.zeros(window * SAMPLES_PER_FRAME, np.float32)
                au[:len(w.audio)] = w.audio
                audios.append(au)
                am[:m] = w.has_audio_frames
            vms.append(vm)
            ams.append(am)
        mouth = torch.from_numpy(np.stack(mouths)).permute(0, 1, 4, 2, 3).to(device) if mouths else None  # (B, T, 3, H, W)
        face = torch.from_numpy(np.stack(faces)).permute(0, 1, 4, 2, 3).to(device) if faces else None
        audio_t = torch.from_numpy(np.stack(audios)).to(device) if audios else None  # (B, T*640)
        vm_t = torch.from_numpy(np.stack(vms)).to(device)
        am_t = torch.from_numpy(np.stack(ams)).to(device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            out = model(mouth, audio_t, face=face, visual_mask=vm_t if mouth is not None else None,
                        audio_mask=am_t if audio_t is not None else None)
        fused = torch.sigmoid(out.frame_fused_logits.float()).cpu().numpy()  # (B, T)
        bnd = torch.sigmoid(out.boundary_logits.float()).cpu().numpy()  # (B, T, 2)
        dist = out.boundary_offsets.float().cpu().numpy()  # (B, T, 2)
        clip = torch.sigmoid(out.clip_logits.float()).cpu().numpy()  # (B,)
        for k, (s, m) in enumerate(zip(chunk, lens)):
            stitcher.add(s, ScoreTrack(frame=fused[k, :m], start=bnd[k, :m, 0], end=bnd[k, :m, 1],
                                       start_dist=dist[k, :m, 0], end_dist=dist[k, :m, 1]))
            clip_probs.append(float(clip[k]))
            clip_w.append(m)
    props = propose(stitcher.result(), proposal_config)
    offset = float(frames_to_seconds(first))
    if len(props):
        props = props + np.array([0.0, offset, offset])
    score = float(np.average(clip_probs, weights=clip_w))
    return ClipPrediction(entry.file, score, props, offset)


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
    and detection AUC / accuracy / EER, for the clips that were predicted."""
    from avdetect.metrics import PROTOCOLS, detection_metrics, localization_metrics

    proto = PROTOCOLS[protocol]
    by_file = {e.file: e for e in entries}
    gts = [np.asarray(by_file[p.file].fake_segments, dtype=np.float64).reshape(-1, 2) for p in preds]
    loc = localization_metrics([p.proposals if len(p.proposals) else np.zeros((0, 3)) for p in preds], gts,
                               proto.ap_iou_thresholds, proto.ar_n_proposals, proto.ar_iou_thresholds)
    labels = [by_file[p.file].label for p in preds]
    result = {"protocol": protocol, "n_videos": len(preds), "n_fake": int(sum(labels)),
              "n_segments": int(sum(len(g) for g in gts)), "ap": loc["ap"], "ar": loc["ar"]}
    if 0 < sum(labels) < len(labels):
        det = detection_metrics(labels, [p.score for p in preds],
                                categories=[by_file[p.file].category for p in preds])
        for k in ("auc", "accuracy", "eer", "category_accuracy"):
            if k in det:
                result[k] = det[k]
    return result
