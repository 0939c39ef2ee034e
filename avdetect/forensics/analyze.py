"""The one entry point: :func:`analyze` runs every requested analysis that the media allows."""
from __future__ import annotations

import logging
import time

from avdetect.errors import ConfigError
from avdetect.forensics.audio import analyze_audio_splices, audio_frame_features, bandwidth_fact
from avdetect.forensics.blinks import blink_evidence
from avdetect.forensics.container import container_evidence
from avdetect.forensics.evidence import ForensicsResult
from avdetect.forensics.features import FaceFeatures, face_features
from avdetect.forensics.sync import SyncScorer, sync_evidence, sync_track
from avdetect.forensics.visual import track_jump_evidence, visual_change_evidence

log = logging.getLogger(__name__)

#: Analyses, in the order they run; ``kinds=`` picks a subset.
ANALYSES = ("container", "audio", "sync", "visual", "blinks")
#: Evidence kinds each analysis produces.
KINDS = {
    "container": ("container",),
    "audio": ("audio_splice", "audio_bandwidth"),
    "sync": ("sync_offset", "sync_span"),
    "visual": ("visual_change", "face_track_jump"),
    "blinks": ("blinks",),
}
#: Each evidence kind in plain words, as reports name it (timeline lanes, evidence tables).
KIND_LABELS = {
    "container": "file container",
    "audio_splice": "audio splice",
    "audio_bandwidth": "audio bandwidth",
    "sync_offset": "lip-sync offset",
    "sync_span": "lip sync",
    "visual_change": "face-region change",
    "face_track_jump": "face track jump",
    "blinks": "blinks",
}
MIN_FACE_COVERAGE = 0.3


def analyze(media, face_track=None, kinds=None, sync_scorer: SyncScorer | None = None,
            face_feats: FaceFeatures | None = None) -> ForensicsResult:
    """Training-free forensic evidence for ``media`` (a :class:`avdetect.media.Media`).

    Args:
        media: the loaded file.
        face_track: a :class:`avdetect.faces.FaceTrack` *with crops* covering the whole video,
            if already computed; otherwise faces are tracked here, window by window.
        kinds: analyses to run (names from :data:`ANALYSES`); None: all.
        sync_scorer: replaces the training-free sync scorer (e.g. a model's sync head).
        face_feats: per-frame face features already gathered while the caller tracked faces
            (:class:`avdetect.forensics.features.FaceFeatureAccumulator`); then neither decoding
            nor face tracking happens here. Takes precedence over ``face_track``.

    Returns: a :class:`ForensicsResult`; analyses that cannot run (no audio, no video, no face)
    are listed in ``skipped`` with the reason.
    """
    wanted = list(ANALYSES) if kinds is None else ([kinds] if isinstance(kinds, str) else list(kinds))
    unknown = [k for k in wanted if k not in ANALYSES]
    if unknown:
        raise ConfigError(f"unknown evidence kind(s) {', '.join(unknown)} (choose from {', '.join(ANALYSES)})")
    res = ForensicsResult(path=media.info.path, duration_s=float(media.duration))
    for k in ANALYSES:
        if k not in wanted:
            res.skipped[k] = "not requested"

    if "container" in wanted:
        t = time.perf_counter()
        res.evidence += container_evidence(media.info)
        res.ran.append("container")
        res.seconds["container"] = time.perf_counter() - t

    af = None
    if any(k in wanted for k in ("audio", "sync")):
        if media.has_audio:
            t = time.perf_counter()
            af = audio_frame_features(media)
            res.seconds["audio_features"] = time.perf_counter() - t
        else:
            for k in ("audio", "sync"):
                if k in wanted:
                    res.skipped[k] = "the file has no audio stream"

    if "audio" in wanted and af is not None:
        t = time.perf_counter()
        ev, tracks = analyze_audio_splices(af)
        bw = bandwidth_fact(af, media.info.source_sample_rate)
        res.evidence += ev + ([bw] if bw is not None else [])
        res.tracks.update(tracks)
        res.ran.append("audio")
        res.seconds["audio"] = time.perf_counter() - t

    ff = None
    needs_face = [k for k in ("sync", "visual", "blinks") if k in wanted and k not in res.skipped]
    if needs_face:
        if not media.has_video:
            for k in needs_face:
                res.skipped[k] = "the file has no video stream"
        else:
            t = time.perf_counter()
            ff = face_feats if face_feats is not None else face_features(media, face_track=face_track)
            if len(ff) < media.n_frames:
                raise ValueError(f"face features cover {len(ff)} of {media.n_frames} frames")
            res.seconds["face_features"] = time.perf_counter() - t
            if ff.coverage < MIN_FACE_COVERAGE:
                reason = (f"a face is visible in only {ff.coverage:.0%} of the frames" if ff.coverage > 0 else "no face was found")
                for k in needs_face:
                    if k != "visual" or ff.valid.sum() == 0:
                        res.skipped[k] = reason
                if "visual" in needs_face and ff.valid.sum() > 0:
                    res.skipped.pop("visual", None)

    if "sync" in wanted and "sync" not in res.skipped and ff is not None and af is not None:
        t = time.perf_counter()
        track, frame_score = sync_track(ff.mouth, ff.valid, af.speech_env, af.speech, scorer=sync_scorer)
        res.evidence += sync_evidence(track, frame_score, af.speech)
        res.tracks["sync"] = track.to_track()
        res.ran.append("sync")
        res.seconds["sync"] = time.perf_counter() - t

    if "visual" in wanted and "visual" not in res.skipped and ff is not None:
        t = time.perf_counter()
        ev, tracks = visual_change_evidence(ff)
        res.evidence += ev + track_jump_evidence(ff)
        res.tracks.update(tracks)
        res.ran.append("visual")
        res.seconds["visual"] = time.perf_counter() - t

    if "blinks" in wanted and "blinks" not in res.skipped and ff is not None:
        t = time.perf_counter()
        ev, tracks = blink_evidence(ff)
        res.evidence += ev
        res.tracks.update(tracks)
        res.ran.append("blinks")
        res.seconds["blinks"] = time.perf_counter() - t

    res.evidence.sort(key=lambda e: (-e.strength, e.start_s if e.start_s is not None else -1.0))
    return res
