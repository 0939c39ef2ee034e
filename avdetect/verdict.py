"""The ``verdict`` stage of detect: stream results, the file's verdict and its reasons, quality warnings.

**The verdict rule** (:data:`VERDICT_RULE`, recorded in every report's ``verdict_rule``). A false
accusation of a real video is the worst output this tool can give, so a verdict is ``fake`` or
``real`` only where the checkpoint's training covers the input:

* **Outside the checkpoint's domain** (:mod:`avdetect.domain`: a stream it was trained on is
  missing, no tracked face or a face in too few frames, a face too small in the source, a still
  picture or frozen video, several faces of comparable size on screen together, too little
  speech; limits from ``calibration.json``'s ``domain``, see :func:`read_calibration`): verdict
  ``unknown``, no flagged segment (the model's ranked ``proposals`` stay in the report for
  researchers), the stream verdicts ``unknown`` (their scores kept), and the explanation starts
  with why.
* **Inside it**: ``fake`` if the model's p(fake) (the clip score,
  :func:`avdetect.inference.clip_score`) reaches the threshold or a segment is flagged; training-free evidence items that point at manipulation over the same file are added
  to the reasons. A training-free item *with a time span* of a kind that points at manipulation
  (:data:`SPAN_EVIDENCE_KINDS`: ``sync_span``, ``audio_splice``, ``visual_change``) of strength
  >= :data:`STRONG_EVIDENCE` (0.7) that the model does **not** confirm makes the verdict
  ``unknown`` ("inspect this span"), never ``fake``: measured on the 32 real clips of the
  development corpus, two untouched clips carry such items (an Obama address, a sync span of
  strength 0.97; a presenter video, an audio splice of 0.87), so evidence alone would accuse real
  footage. Whole-file facts (``container``, ``audio_bandwidth``, ``blinks``, ``sync_offset``) and
  ``face_track_jump`` (a cut as often as an edit) never change the verdict. ``real`` if none of
  that, every stream present was examined and p(fake) is below the checkpoint's ``real_below``
  (its calibration.json; default the threshold): a weak checkpoint whose real and forged dev
  clips overlap in score says ``unknown`` ("model uncertain") between the two; else ``unknown``.

The reasons, each ``{code, message, brief}`` in plain words with the measured value, are the
report's ``verdict_reasons`` (see :class:`avdetect.report.model.VerdictReason`); what was
measured and the domain it was checked against are in ``extra["domain"]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avdetect.domain import DomainFacts, check_domain
from avdetect.media import stream_start_warning
from avdetect.report.model import ModalityResult, QualityWarning, VerdictReason, against

MIN_CLIP_S = 2.0  # shorter clips get a warning: less context than the model was trained with
LOW_RES_SIDE = 240  # source videos whose shorter side is below this get a warning
SMALL_FACE_FRAC = 0.08  # main face height below this fraction of the frame: warning
CLOSE_FACE_RATIO = 0.8  # a second face scoring this much of the judged one's persistence x size: a close choice

#: Evidence kinds whose items have a time span and point at a manipulation there (a strong one
#: the model does not confirm makes an in-domain verdict unknown; see the module docstring).
SPAN_EVIDENCE_KINDS = ("sync_span", "audio_splice", "visual_change")
#: Strength at or above which such an item makes an in-domain file fake.
STRONG_EVIDENCE = 0.7
#: The verdict rule in words, as every report records it.
VERDICT_RULE = (
    "unknown if the file is outside the checkpoint's domain (any failed domain check, listed in verdict_reasons; "
    "then no segment is flagged and the model's proposals are kept for reference only); otherwise fake if the "
    "model's p(fake) reaches the threshold or a segment is flagged; otherwise unknown if a training-free evidence "
    f"item with a time span ({', '.join(SPAN_EVIDENCE_KINDS)}) has strength >= {STRONG_EVIDENCE:g} (evidence alone "
    "never makes a file fake); otherwise real if every stream present was examined and p(fake) is below the "
    "checkpoint's real_below (default: the threshold); otherwise unknown"
)


@dataclass(frozen=True)
class Verdict:
    """What :func:`decide_verdict` decided: ``verdict`` (fake | real | unknown), ``reasons`` (the
    report's ``verdict_reasons``) and whether the file is inside the checkpoint's domain."""

    verdict: str
    reasons: list[VerdictReason]
    in_domain: bool


def strong_span_evidence(evidence: list[dict], strong: float = STRONG_EVIDENCE) -> list[dict]:
    """Evidence items with a time span, of a kind in :data:`SPAN_EVIDENCE_KINDS`, with strength
    >= ``strong``, strongest first (whole-file facts never qualify)."""
    items = [e for e in evidence if e.get("kind") in SPAN_EVIDENCE_KINDS and e.get("start_s") is not None
             and e.get("end_s") is not None and float(e.get("strength") or 0.0) >= strong]
    return sorted(items, key=lambda e: -float(e["strength"]))


def decide_verdict(p_fake: float, threshold: float, segments: list, evidence: list[dict],
                   domain_reasons: list[VerdictReason], unexamined: list[str] = (),
                   real_below: float | None = None) -> Verdict:
    """The verdict rule (:data:`VERDICT_RULE`; module docstring) on what detection found.

    Args:
        p_fake: the model's p(fake) of the file, the clip score (:func:`avdetect.inference.clip_score`).
        threshold: the decision threshold.
        segments: segments the model flagged (objects with ``start_s``, ``end_s``, ``modality``).
        evidence: training-free evidence items (report dicts: ``kind``, ``start_s``, ``end_s``,
            ``strength``, ``explanation``).
        domain_reasons: failed domain checks (:func:`avdetect.domain.check_domain`); any -> unknown.
        unexamined: one note per stream present in the file that could not be examined.
        real_below: ``real`` only below this p(fake) (None: the threshold); between the two: unknown.
    """
    if domain_reasons:
        return Verdict("unknown", list(domain_reasons), in_domain=False)
    reasons: list[VerdictReason] = []
    limits = (threshold,) if real_below is None else (threshold, real_below)
    p_text, t_text, *below_text = against(p_fake, *limits)  # decimals that keep p on its side of each
    if p_fake >= threshold:
        reasons.append(VerdictReason("model_score", f"the model's p(fake) {p_text} reaches the threshold {t_text}",
                                     f"p(fake) {p_text} >= {t_text}"))
    if segments:
        top = segments[0]
        reasons.append(VerdictReason(
            "flagged_segments", f"the model flags {len(segments)} segment(s), the strongest {top.start_s:.2f}-{top.end_s:.2f} s "
                                f"({top.modality})", f"{len(segments)} segment(s) flagged"))
    strong = strong_span_evidence(evidence)
    if strong:
        e = strong[0]
        kind = str(e["kind"]).replace("_", " ")
        where = f"{kind} at {e['start_s']:.2f}-{e['end_s']:.2f} s (strength {float(e['strength']):.2f})"
        brief = f"{kind} {e['start_s']:.2f}-{e['end_s']:.2f} s, strength {float(e['strength']):.2f}"
        if reasons:  # the model's call, with the evidence that agrees
            reasons.append(VerdictReason(
                "strong_evidence", f"{len(strong)} training-free evidence item(s) with a time span reach strength "
                                   f"{STRONG_EVIDENCE:g}, the strongest {where}: {e.get('explanation', '')}".rstrip(": "),
                brief))
        else:
            return Verdict("unknown", [VerdictReason(
                "evidence_unconfirmed", f"the model finds nothing, but {len(strong)} training-free evidence item(s) with a "
                                        f"time span reach strength {STRONG_EVIDENCE:g}, the strongest {where}: "
                                        f"{e.get('explanation', '')}; such items also occur in untouched footage, so this "
                                        "is a span to inspect, not a verdict".replace(": ;", ";"),
                f"evidence to inspect: {brief}")], in_domain=True)
    if reasons:
        return Verdict("fake", reasons, in_domain=True)
    if unexamined:
        return Verdict("unknown", [VerdictReason(
            "stream_not_examined", "; ".join(unexamined) + ": a stream present in the file could not be examined, so "
                                                           "'real' cannot be claimed", "a stream was not examined")],
            in_domain=True)
    if real_below is not None and p_fake >= min(real_below, threshold):
        return Verdict("unknown", [VerdictReason(
            "model_uncertain", f"the model's p(fake) {p_text} is below the threshold {t_text} but not below "
                               f"{below_text[0]}, the score under which this checkpoint's real and forged dev clips "
                               "separate: it cannot tell real from fake here", f"model uncertain, p(fake) {p_text}")],
            in_domain=True)
    return Verdict("real", [VerdictReason(
        "nothing_found", f"inside the checkpoint's domain, the model's p(fake) {p_text} is below the threshold "
                         f"{t_text}, no segment is flagged and no training-free evidence with a time span reaches "
                         f"strength {STRONG_EVIDENCE:g}", "nothing found")], in_domain=True)


def out_of_domain(m: ModalityResult) -> ModalityResult:
    """A stream's result when the file is outside the checkpoint's domain: its score is kept for
    reference, its verdict is ``unknown``."""
    if m.verdict == "unknown":
        return m
    note = "outside the checkpoint's domain: the score is not a verdict" + (f" ({m.note})" if m.note else "")
    return ModalityResult(m.available, m.score, "unknown", note)


def stream_result(name: str, present: bool, judged: bool, score: float | None, threshold: float,
                  coverage: float, real_below: float | None = None) -> ModalityResult:
    """The report's result for one stream (``visual`` or ``audio``): ``fake`` at or above the
    threshold, ``unknown`` between ``real_below`` and it, else ``real``; ``unknown`` when the
    stream is absent or was not examined."""
    if not present:
        note = "the file has no audio stream: audio branch skipped" if name == "audio" else \
            "the file has no video stream: visual branch skipped"
        return ModalityResult(False, None, "unknown", note)
    if not judged or score is None:
        return ModalityResult(True, None, "unknown",
                              f"a face was found in {coverage:.0%} of frames: too few to judge the video")
    note = f"face in {coverage:.0%} of frames" if name == "visual" else ""
    if score >= threshold:
        return ModalityResult(True, round(score, 4), "fake", note)
    if real_below is not None and score >= min(real_below, threshold):
        return ModalityResult(True, round(score, 4), "unknown", "; ".join(
            x for x in (note, f"score between real_below {against(score, real_below)[1]} and the threshold: the model "
                              "cannot tell") if x))
    return ModalityResult(True, round(score, 4), "real", note)


def explain(decision: Verdict, p_fake: float, threshold: float, visual: ModalityResult, audio: ModalityResult) -> str:
    """The report's explanation: why the verdict first, then the model's readings."""
    readings = "p(fake) = {} against a threshold of {}".format(*against(p_fake, threshold))
    why = "; ".join(r.message for r in decision.reasons)
    if not decision.in_domain:
        return (f"Outside the checkpoint's domain, so no verdict: {why}. For reference only, not a verdict: the "
                f"model's {readings}; its ranked proposals are in the report, none is flagged.")
    head = {"fake": "Fake", "real": "Real", "unknown": "Unknown"}[decision.verdict]
    return f"{head}: {why}. The model's {readings}; visual: {visual.verdict}, audio: {audio.verdict}."


def faces_seen(face_track, track_ids: np.ndarray | None) -> tuple[dict | None, QualityWarning | None]:
    """Every face the tracker saw and which was judged: the report's ``extra["faces"]`` (None
    without video) and, when more than one face was seen, a warning that names them all, the
    judged one (the main speaker frame by frame: persistence x size, see
    :class:`avdetect.faces.FaceTracker`) and, when the runner-up scores at least
    :data:`CLOSE_FACE_RATIO` of it, that the choice was close. ``face_track``: the tracker's last
    :class:`FaceTrack` (its track summaries); ``track_ids``: (n,) the track judged in each frame
    (-1: none)."""
    if face_track is None or track_ids is None:
        return None, None
    from avdetect.timegrid import frames_to_seconds

    faces = sorted(face_track.faces, key=lambda t: -t.score)
    ids, counts = np.unique(track_ids[track_ids >= 0], return_counts=True)
    judged = sorted(((int(i), int(c)) for i, c in zip(ids, counts)), key=lambda ic: -ic[1])
    info = {"n_faces": len(faces),
            "judged": [{"track_id": i, "seconds": round(float(frames_to_seconds(c)), 3)} for i, c in judged],
            "faces": [{"track_id": t.track_id, "start_s": round(float(frames_to_seconds(t.first_frame)), 3),
                       "end_s": round(float(frames_to_seconds(t.last_frame + 1)), 3), "detections": t.detections,
                       "mean_height": round(float(t.mean_height), 4), "score": round(float(t.score), 2)} for t in faces]}
    if len(faces) < 2:
        return info, None
    total = max(1, sum(c for _, c in judged))
    named = "; ".join(f"#{t['track_id']} at {t['start_s']:.1f}-{t['end_s']:.1f} s, {t['mean_height']:.0%} of the frame "
                      f"height, persistence x size {t['score']:.1f}" for t in info["faces"][:6])
    more = f" and {len(faces) - 6} more" if len(faces) > 6 else ""
    which = ", ".join(f"#{i} in {c / total:.0%} of the frames with a face" for i, c in judged) or "none"
    text = f"{len(faces)} faces were seen ({named}{more}); the face judged: {which}; the others were not examined"
    main, second = faces[0], faces[1]
    if second.score >= CLOSE_FACE_RATIO * main.score:
        text += (f"; the choice was close ({main.score:.1f} vs {second.score:.1f}): the judged face may not be the "
                 "one speaking")
    return info, QualityWarning("faces_seen", text)


def quality_warnings(info, coverage: float, visual_ok: bool, face_track, min_clip_s: float = MIN_CLIP_S) -> list[QualityWarning]:
    """Warnings about the input (no audio, no or partial face, short, low resolution, small face,
    variable frame rate, audio and video starting apart, the decoder's own warnings).
    ``face_track``: the tracker's last :class:`FaceTrack` (its ``faces`` summaries), or None."""
    has_video, has_audio = bool(info.has_video), bool(info.has_audio)
    w: list[QualityWarning] = []
    if not has_audio:
        w.append(QualityWarning("no_audio", "the file has no audio stream: the audio branch was skipped and "
                                            "the audio verdict is unknown"))
    if not has_video:
        w.append(QualityWarning("no_video", "the file has no video stream: only the audio was examined"))
    elif coverage == 0.0:
        w.append(QualityWarning("no_face", "no face was found in any frame: the visual branch was masked and "
                                           "the visual verdict is unknown"))
    elif coverage < 0.95:
        w.append(QualityWarning("partial_face", f"no face in {1 - coverage:.0%} of frames: those frames were "
                                                "judged on the audio only" + ("" if visual_ok else
                                                "; too few faces for a visual verdict")))
    if info.duration < min_clip_s:
        w.append(QualityWarning("short_clip", f"very short clip ({info.duration:.2f} s): the model sees less "
                                              "context than it was trained with"))
    if has_video:
        sw, sh = info.source_size
        if min(sw, sh) < LOW_RES_SIDE:
            w.append(QualityWarning("low_resolution", f"low resolution ({sw}x{sh}): fine visual artefacts may "
                                                      "be invisible"))
        if face_track is not None and face_track.faces:
            main = max(face_track.faces, key=lambda t: t.score)
            if main.mean_height < SMALL_FACE_FRAC:
                w.append(QualityWarning("small_face", f"the main face is small ({main.mean_height:.0%} of the "
                                                      "frame height): mouth crops are upscaled"))
        if info.variable_frame_rate:
            w.append(QualityWarning("variable_frame_rate", "variable frame rate: frames were resampled onto a "
                                                           "constant 25 fps grid"))
    gap = stream_start_warning(info)
    if gap:
        w.append(QualityWarning("stream_start_offset", gap))
    for text in info.warnings:
        w.append(QualityWarning("media", text))
    return w


@dataclass
class Judgement:
    """What :func:`judge` returns: the decision, the stream results and the segments that stay
    flagged (none outside the domain), with the explanation."""

    decision: Verdict
    visual: ModalityResult
    audio: ModalityResult
    segments: list
    explanation: str


def judge(score, threshold: float, real_below: float | None, segments: list, evidence: list[dict],
          facts: DomainFacts, domain, has_video: bool, has_audio: bool, coverage: float,
          visual_ok: bool) -> Judgement:
    """The verdict stage: the domain checks on ``facts`` (:func:`avdetect.domain.check_domain`
    against the checkpoint's ``domain``), the stream results, :func:`decide_verdict` on the clip
    score ``score`` (:class:`avdetect.inference.ClipScore`), the flagged ``segments`` and the
    ``evidence`` items, and the explanation."""
    domain_reasons = check_domain(facts, domain)
    visual = stream_result("visual", has_video, visual_ok, score.visual, threshold, coverage, real_below)
    audio = stream_result("audio", has_audio, has_audio, score.audio, threshold, coverage, real_below)
    unexamined = [] if (not has_video or visual_ok) else [visual.note]  # streams present but not examined
    decision = decide_verdict(score.fake_probability, threshold, segments, evidence, domain_reasons, unexamined,
                              real_below=real_below)
    if not decision.in_domain:  # no accusation outside the domain: proposals stay, nothing is flagged
        segments = []
        visual, audio = out_of_domain(visual), out_of_domain(audio)
    return Judgement(decision, visual, audio, segments,
                     explain(decision, score.fake_probability, threshold, visual, audio))
