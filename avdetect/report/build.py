"""The ``report`` stage of detect: thumbnails, provenance and the :class:`DetectionReport` itself.

Everything here turns what the earlier stages found (frame indices, score tracks, masks) into
the report's public form: seconds, rounded numbers, ``None`` where a stream is absent.
"""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from avdetect._version import __version__
from avdetect.errors import MediaError
from avdetect.report.model import DetectionReport, Provenance, Segment, Thumbnail, Tracks
from avdetect.timegrid import FPS, frames_to_seconds, seconds_to_frame
from avdetect.vocab import FACE_SIZE

THUMBNAIL_FACE_PX = FACE_SIZE  # face thumbnails, square: the tracker's face crops (its stills)


def _r(x: float, nd: int = 6) -> float:
    return float(round(float(x), nd))


def _track_list(values: np.ndarray, mask: np.ndarray) -> list[float | None]:
    return [round(float(v), 4) if m else None for v, m in zip(values, mask)]


def thumbnails(media, segments: list[Segment], valid: np.ndarray, boxes: np.ndarray | None,
               stills: dict[int, tuple[str, str]] | None = None) -> list[Thumbnail]:
    """One JPEG per flagged segment: the face crop of the frame with a face nearest the
    segment's middle or, where the segment holds no face, the whole frame, small. Taken from
    the face tracker's ``stills`` (one frame a second, :data:`avdetect.faces.tracking.STILL_EVERY`,
    kept as the video was decoded: the face crop where a face was tracked, else the whole frame):
    the face still inside the segment nearest its middle; where none of its stills shows a face
    (its faces are on a few frames between stills), its whole-frame still nearest the middle,
    which shows that moment as it was. Only a segment holding no still at all (shorter than a
    second) costs a seek, of its middle face frame (or middle frame): at 4K one seek took 0.75 s.
    The seeks run a few at a time (ffmpeg and the JPEG encoder release the interpreter), in the
    segments' order."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    if not segments:
        return []
    stills = stills or {}
    with ThreadPoolExecutor(max_workers=max(1, min(len(segments), os.cpu_count() or 1, 4))) as pool:
        return list(pool.map(lambda ks: _thumbnail(media, ks[0], ks[1], valid, boxes, stills), enumerate(segments)))


def _thumbnail(media, k: int, seg: Segment, valid: np.ndarray, boxes: np.ndarray | None,
               stills: dict[int, tuple[str, str]]) -> Thumbnail:
    from avdetect.faces.crops import crop, face_crop_box, jpeg_base64, small_frame

    a = seconds_to_frame(seg.start_s)
    b = min(max(a + 1, seconds_to_frame(seg.end_s)), len(valid))
    mid = (a + b) // 2
    inside = np.flatnonzero(valid[a:b]) + a
    held = [i for i in stills if a <= i < b]
    faces = [i for i in held if stills[i][0] == "face" and valid[i]]
    kept = faces if faces else [i for i in held if stills[i][0] == "frame"]
    if kept:
        i = min(kept, key=lambda i: (abs(i - mid), i))
        return Thumbnail(segment=k, time_s=_r(frames_to_seconds(i), 3), jpeg_base64=stills[i][1])
    i = int(inside[np.argmin(np.abs(inside - mid))]) if len(inside) else min(mid, len(valid) - 1)
    frame = next(media.iter_frames(start=i, stop=i + 1))
    img = crop(frame, face_crop_box(boxes[i]), THUMBNAIL_FACE_PX) if boxes is not None and valid[i] else small_frame(frame)
    try:
        text = jpeg_base64(img)
    except ValueError as err:
        raise MediaError(f"could not encode a thumbnail of frame {i}: {err}", media.info.path) from err
    return Thumbnail(segment=k, time_s=_r(frames_to_seconds(i), 3), jpeg_base64=text)


def provenance(media, detector, parameters: dict, started_at: str, run_time_s: float,
               stage_seconds: dict[str, float]) -> Provenance:
    """Where the result came from: the file (hash, streams), the tool, the model, the parameters, the run."""
    import torch

    info = media.info
    has_video, has_audio = bool(info.has_video), bool(info.has_audio)
    v_stream = next((s for s in info.streams if s.kind == "video"), None)
    return Provenance(
        file_name=Path(info.path).name, file_path=str(Path(info.path).resolve()), sha256=media.sha256,
        size_bytes=int(info.size_bytes), duration_s=_r(info.duration, 4), container=info.container,
        video_codec=info.video_codec, audio_codec=info.audio_codec,
        source_size=list(info.source_size) if has_video else None,
        source_fps=float(info.source_fps) if has_video else None,
        audio_sample_rate=int(info.source_sample_rate) if has_audio else None,
        audio_channels=int(info.source_channels) if has_audio else None,
        media_warnings=list(info.warnings) + ([f"variable frame rate (declared {v_stream.fps} fps)"]
                                              if v_stream is not None and info.variable_frame_rate else []),
        package="avdetect", package_version=__version__, model_name=detector.model.config.name,
        checkpoint=detector.checkpoint, weights_sha256=detector.weights_sha256,
        model_parameters=int(detector.model.num_parameters()), parameters=parameters, device=str(detector.device),
        started_at=started_at, run_time_s=_r(run_time_s, 4), stage_seconds={k: _r(v, 4) for k, v in stage_seconds.items()},
        python_version=platform.python_version(), torch_version=torch.__version__,
    )


def build_report(path, sources, result, score, localisation, judgement, evidence: list[dict], forensics: dict,
                 warnings: list, thumbs: list[Thumbnail], prov: Provenance, threshold: float, rule: str,
                 extra: dict) -> DetectionReport:
    """The :class:`DetectionReport` from the stages' outputs: ``sources``
    (:class:`avdetect.sources.Sources`), ``result`` (:class:`avdetect.inference.InferenceResult`),
    ``score`` (:class:`~avdetect.inference.ClipScore`), ``localisation``
    (:class:`avdetect.localization.Localisation`), ``judgement`` (:class:`avdetect.verdict.Judgement`)."""
    from avdetect.vocab import CATEGORIES

    n = result.n_frames
    vmask = result.visual_present if result.visual_present is not None else np.zeros(n, bool)
    amask = result.audio_present if result.audio_present is not None else np.zeros(n, bool)
    fmask = vmask | amask
    cats = result.category_probabilities
    if cats is None:
        cats = np.full(len(CATEGORIES), 1.0 / len(CATEGORIES))
    tr = result.tracks
    coverage = float(vmask.mean()) if sources.has_video else 0.0
    return DetectionReport(
        file=str(path), verdict=judgement.decision.verdict, verdict_reasons=judgement.decision.reasons,
        verdict_rule=rule, fake_probability=_r(score.fake_probability), threshold=float(threshold),
        category_probabilities={c: _r(p) for c, p in zip(CATEGORIES, cats)},
        visual=judgement.visual, audio=judgement.audio, segments=judgement.segments,
        proposals={k: [[_r(c, 5), _r(a, 3), _r(b, 3)] for c, a, b in v] for k, v in localisation.proposals.items()},
        tracks=Tracks(
            fps=float(FPS), start_s=0.0, n_frames=int(n),
            visual=_track_list(tr["visual"].frame, vmask), audio=_track_list(tr["audio"].frame, amask),
            fused=_track_list(tr["fused"].frame, fmask), sync=_track_list(tr["sync"].frame, vmask & amask),
            face=[int(v) for v in vmask], audio_level=_track_list(sources.audio_level, amask),
        ),
        face_coverage=_r(coverage, 4), warnings=warnings, evidence=evidence, forensics=forensics,
        thumbnails=thumbs, provenance=prov, explanation=judgement.explanation, extra=extra,
    )
