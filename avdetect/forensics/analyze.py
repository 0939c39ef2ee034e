"""The one entry point: :func:`analyze` runs every requested analysis that the media allows.

The analyses are the :class:`~avdetect.forensics.registry.Analysis` objects registered at the
end of this module (in the order they run); each declares its evidence kinds and the inputs it
needs, which are computed here once, on first need: ``audio`` (per-frame audio features),
``speech`` (per-frame speech activity: the Silero VAD's where it is installed, computed in the
same decoding pass as the audio features, else the energy gate; recorded in ``tracks["speech"]``
and, for the VAD, its time in ``seconds["speech_activity"]``) and ``faces`` (per-frame face
features, from the caller's or from a face tracking done here).
"""
from __future__ import annotations

import logging
import time

from avdetect import vad
from avdetect._threads import BackgroundCall
from avdetect.errors import ConfigError
from avdetect.forensics.audio import AUDIO, SpeechActivity, VADSink, audio_frame_features, energy_speech, vad_probability, vad_speech
from avdetect.forensics.blinks import BLINKS
from avdetect.forensics.container import CONTAINER
from avdetect.forensics.evidence import ForensicsResult
from avdetect.forensics.features import FaceFeatures, face_features
from avdetect.forensics.registry import Analysis, Inputs, analysis_names, catalog, register_analysis, registered_analyses
from avdetect.forensics.sync import SYNC, SyncScorer
from avdetect.forensics.visual import VISUAL

log = logging.getLogger(__name__)


def _vad_sink() -> tuple[VADSink | None, str]:
    """A VAD consumer for the audio decoding, or None and why (VAD not installed or not loadable)."""
    if not vad.vad_available():
        return None, "the Silero VAD is not installed (silero-vad + onnxruntime)"
    try:
        return VADSink(), ""
    except vad.VADUnavailableError as err:
        note = f"the Silero VAD could not be loaded ({err})"
        log.warning("speech activity: %s; using the energy gate", note)
        return None, note


def _audio_step(media, with_speech: bool) -> tuple:
    """The per-frame audio features, and with ``with_speech`` the VAD's probabilities from the same
    decoding: ``(features, vad probability or None, why no VAD, seconds per part)``."""
    sink, note = _vad_sink() if with_speech else (None, "")
    t = time.perf_counter()
    audio = audio_frame_features(media, sink=sink)
    seconds, prob = {}, None
    if sink is not None:
        prob = sink.probability(len(audio))
        seconds["speech_activity"] = sink.seconds
    seconds["audio_features"] = time.perf_counter() - t - (sink.seconds if sink is not None else 0.0)
    return audio, prob, note, seconds


class AudioPrefetch(BackgroundCall):
    """The audio step of :func:`analyze` (per-frame audio features and the VAD's speech
    probabilities, one decoding) started at once in a thread, for an ``analyze(...,
    audio_prefetch=)`` called later on the same media: the face worker starts it before tracking
    faces, so that it runs on a core the tracking leaves idle instead of after it. What it raises
    is raised by that ``analyze``."""

    def __init__(self, media, with_speech: bool = True):
        self.with_speech = with_speech
        super().__init__(_audio_step, media, with_speech, name="avdetect-audio-evidence")


class _Sources:
    """The inputs of one :func:`analyze` call, computed on first need; ``missing(analysis)`` says
    why an analysis cannot run (None: it can)."""

    def __init__(self, media, res: ForensicsResult, face_track, face_feats: FaceFeatures | None,
                 face_backend: str = "auto", audio_prefetch: AudioPrefetch | None = None):
        self.media, self.res, self.face_track = media, res, face_track
        self.face_backend = face_backend
        self.audio = None
        self.speech: SpeechActivity | None = None
        self._vad_prob = None
        self._vad_note = ""
        self._prefetch = audio_prefetch
        self.faces = face_feats
        self._faces_given = face_feats is not None
        self._faces_done = False

    def _audio(self, with_speech: bool = False):
        if self.audio is None:
            if self._prefetch is not None and (self._prefetch.with_speech or not with_speech):
                self.audio, self._vad_prob, self._vad_note, seconds = self._prefetch.result()
            else:
                self.audio, self._vad_prob, self._vad_note, seconds = _audio_step(self.media, with_speech)
            self.res.seconds.update(seconds)
        return self.audio

    def _speech(self) -> SpeechActivity:
        """The shared speech activity (computed once: the VAD's where available, else the energy gate)."""
        if self.speech is None:
            af = self._audio(with_speech=True)
            # the audio features were computed before speech was needed: a second decoding pass, for the VAD alone
            if self._vad_prob is None and not self._vad_note:
                sink, self._vad_note = _vad_sink()
                if sink is not None:
                    t = time.perf_counter()
                    self._vad_prob = vad_probability(self.media, len(af))
                    self.res.seconds["speech_activity"] = time.perf_counter() - t
            self.speech = vad_speech(self._vad_prob) if self._vad_prob is not None else energy_speech(af, self._vad_note)
            self.res.tracks["speech"] = self.speech.to_track()
        return self.speech

    def _faces(self) -> FaceFeatures:
        if not self._faces_done:
            t = time.perf_counter()
            if not self._faces_given:
                self.faces = face_features(self.media, face_track=self.face_track, backend=self.face_backend)
            if len(self.faces) < self.media.n_frames:
                raise ValueError(f"face features cover {len(self.faces)} of {self.media.n_frames} frames")
            self.res.seconds["face_features"] = time.perf_counter() - t
            self._faces_done = True
        return self.faces

    def missing(self, a: Analysis) -> str | None:
        if "audio" in a.needs or "speech" in a.needs:
            if not self.media.has_audio:
                return "the file has no audio stream"
            self._audio(with_speech="speech" in a.needs)
        if "speech" in a.needs:
            self._speech()
        if ("video" in a.needs or "faces" in a.needs) and not self.media.has_video:
            return "the file has no video stream"
        if "faces" in a.needs:
            ff = self._faces()
            if ff.coverage < a.min_face_coverage or not ff.valid.any():
                return f"a face is visible in only {ff.coverage:.0%} of the frames" if ff.coverage > 0 else "no face was found"
        return None

    def inputs(self, a: Analysis, sync_scorer) -> Inputs:
        return Inputs(media=self.media, audio=self.audio if "audio" in a.needs else None,
                      faces=self.faces if "faces" in a.needs else None,
                      speech=self.speech if "speech" in a.needs else None, sync_scorer=sync_scorer)


def analyze(media, face_track=None, kinds=None, sync_scorer: SyncScorer | None = None,
            face_feats: FaceFeatures | None = None, face_backend: str = "auto",
            audio_prefetch: AudioPrefetch | None = None) -> ForensicsResult:
    """Training-free forensic evidence for ``media`` (a :class:`avdetect.media.Media`).

    Args:
        media: the loaded file.
        face_track: a :class:`avdetect.faces.FaceTrack` *with crops* covering the whole video,
            if already computed; otherwise faces are tracked here, window by window.
        kinds: analyses to run (names from :func:`~avdetect.forensics.registry.analysis_names`);
            None: all.
        sync_scorer: replaces the training-free sync scorer (e.g. a model's sync head).
        face_feats: per-frame face features already gathered while the caller tracked faces
            (:class:`avdetect.forensics.features.FaceFeatureAccumulator`); then neither decoding
            nor face tracking happens here. Takes precedence over ``face_track``.
        face_backend: the face backend faces are tracked with here when neither is given
            (``"auto"``: mediapipe when installed, else opencv).
        audio_prefetch: the audio step already started on ``media`` (:class:`AudioPrefetch`);
            its result is used, and what it raised is raised, when an analysis needs the audio.

    Returns: a :class:`ForensicsResult`; analyses that cannot run (no audio, no video, no face)
    are listed in ``skipped`` with the reason; ``catalog`` describes every registered kind.
    """
    names = analysis_names()
    wanted = list(names) if kinds is None else ([kinds] if isinstance(kinds, str) else list(kinds))
    unknown = [k for k in wanted if k not in names]
    if unknown:
        raise ConfigError(f"unknown evidence kind(s) {', '.join(unknown)} (choose from {', '.join(names)})")
    res = ForensicsResult(path=media.info.path, duration_s=float(media.duration), catalog=catalog())
    for name in names:
        if name not in wanted:
            res.skipped[name] = "not requested"
    sources = _Sources(media, res, face_track, face_feats, face_backend, audio_prefetch)
    for a in registered_analyses():
        if a.name not in wanted:
            continue
        why = sources.missing(a)
        if why is not None:
            res.skipped[a.name] = why
            continue
        t = time.perf_counter()
        items, tracks = a.run(sources.inputs(a, sync_scorer))
        stray = sorted({e.kind for e in items} - set(a.kinds))
        if stray:
            raise ValueError(f"analysis {a.name!r} produced evidence of kind(s) {stray}, not among its declared kinds {list(a.kinds)}")
        res.evidence += items
        res.tracks.update(tracks)
        res.ran.append(a.name)
        res.seconds[a.name] = time.perf_counter() - t
    res.evidence.sort(key=lambda e: (-e.strength, e.start_s if e.start_s is not None else -1.0))
    return res


# The built-in analyses, in the order they run. A new evidence kind: a module declaring its
# Analysis, and one line here.
for _analysis in (CONTAINER, AUDIO, SYNC, VISUAL, BLINKS):
    register_analysis(_analysis)
