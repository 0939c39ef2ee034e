"""The one entry point: :func:`analyze` runs every requested analysis that the media allows.

The analyses are the :class:`~avdetect.forensics.registry.Analysis` objects registered at the
end of this module (in the order they run); each declares its evidence kinds and the inputs it
needs, which are computed here once, on first need: ``audio`` (per-frame audio features) and
``faces`` (per-frame face features, from the caller's or from a face tracking done here).
"""
from __future__ import annotations

import time

from avdetect.errors import ConfigError
from avdetect.forensics.audio import AUDIO, audio_frame_features
from avdetect.forensics.blinks import BLINKS
from avdetect.forensics.container import CONTAINER
from avdetect.forensics.evidence import ForensicsResult
from avdetect.forensics.features import FaceFeatures, face_features
from avdetect.forensics.registry import Analysis, Inputs, analysis_names, catalog, register_analysis, registered_analyses
from avdetect.forensics.sync import SYNC, SyncScorer
from avdetect.forensics.visual import VISUAL


class _Sources:
    """The inputs of one :func:`analyze` call, computed on first need; ``missing(analysis)`` says
    why an analysis cannot run (None: it can)."""

    def __init__(self, media, res: ForensicsResult, face_track, face_feats: FaceFeatures | None):
        self.media, self.res, self.face_track = media, res, face_track
        self.audio = None
        self.faces = face_feats
        self._faces_given = face_feats is not None
        self._faces_done = False

    def _audio(self):
        if self.audio is None:
            t = time.perf_counter()
            self.audio = audio_frame_features(self.media)
            self.res.seconds["audio_features"] = time.perf_counter() - t
        return self.audio

    def _faces(self) -> FaceFeatures:
        if not self._faces_done:
            t = time.perf_counter()
            if not self._faces_given:
                self.faces = face_features(self.media, face_track=self.face_track)
            if len(self.faces) < self.media.n_frames:
                raise ValueError(f"face features cover {len(self.faces)} of {self.media.n_frames} frames")
            self.res.seconds["face_features"] = time.perf_counter() - t
            self._faces_done = True
        return self.faces

    def missing(self, a: Analysis) -> str | None:
        if "audio" in a.needs:
            if not self.media.has_audio:
                return "the file has no audio stream"
            self._audio()
        if ("video" in a.needs or "faces" in a.needs) and not self.media.has_video:
            return "the file has no video stream"
        if "faces" in a.needs:
            ff = self._faces()
            if ff.coverage < a.min_face_coverage or not ff.valid.any():
                return f"a face is visible in only {ff.coverage:.0%} of the frames" if ff.coverage > 0 else "no face was found"
        return None

    def inputs(self, a: Analysis, sync_scorer) -> Inputs:
        return Inputs(media=self.media, audio=self.audio if "audio" in a.needs else None,
                      faces=self.faces if "faces" in a.needs else None, sync_scorer=sync_scorer)


def analyze(media, face_track=None, kinds=None, sync_scorer: SyncScorer | None = None,
            face_feats: FaceFeatures | None = None) -> ForensicsResult:
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
    sources = _Sources(media, res, face_track, face_feats)
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
