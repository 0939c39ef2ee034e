"""Audio-visual synchrony track: per-window AV offset and confidence, and the whole-clip offset.

Without a trained sync model, how can mouth pixels be compared with sound? We let each clip
calibrate itself:

1. **Visual features**: the lips region of every mouth crop (32 x 32 luma thumbnail),
   high-passed over 0.5 s (lighting drift and slow head motion removed, syllable-rate detail
   kept), projected on its first 6 principal components (fewer on short clips: at least 8
   frames per regression weight), plus their absolute frame-to-frame changes: (T, 2 k). Where
   the face backend measured landmarks on most frames (:data:`LANDMARK_MIN`), a second feature
   set: the lip aperture (inner-lip opening / mouth width,
   :data:`avdetect.faces.crops.FACE_FEATURES`), high-passed the same way, and its absolute
   change: (T, 2), a geometric measure of the opening that lighting, teeth and beard do not move,
   with two weights where the pixels need twelve (on a 3 s clip the pixel regression overfits).
   Each set gets its own regression below, and their agreement curves are averaged. Measured on
   the 32 real clips of ``../shared`` (FaceMesh landmarks, levelled crops): the whole-clip offset
   falls in the natural range (-60..+140 ms) on 20 clips with both sets averaged, 15 with the
   pixels alone, 19 with the aperture alone, 17 with both in one regression; median confidence
   0.26, 0.19, 0.32, 0.18. Without landmarks (the Haar backend) the pixels are the only set.
2. **Speech envelope**: log energy of the 200-4000 Hz band per 40 ms frame, floored 30 dB
   below the loudest frame (so that silence is not modelled as detail), high-passed the same way.
3. **Global offset**: for every lag l in [-25, +25] frames (fewer on clips under 6 s: at most
   a sixth of the clip), a ridge regression predicts the envelope at t + l from the mouth at t,
   fitted on the whole clip; the correlation of its prediction with the envelope measures how
   well mouth and sound agree at that lag. The best
   lag is the whole-clip offset; the height of its peak above the median over lags is the
   confidence. An offset outside the natural range is weighed by how far its peak stands above
   the best lag inside it (:data:`NATURAL_MARGIN`): speech rhythm gives real clips second peaks
   nearly as high. The fit is in-sample on purpose: with few weights (<= 12) the overfit lifts
   every lag about equally, whereas held-out folds are meaningless on looped or repetitive
   footage (the same frames sit in every fold). ``EnvelopeSyncScorer(cross_fit=True)`` gives
   5-fold out-of-fold predictions instead.
4. **Per-window track**: each set's prediction at the global offset is a *visual speech
   envelope*. In every 2 s window (hop 0.5 s) its correlation with the real envelope (averaged
   over the sets) is computed at
   every lag within +-25 frames (1 s) of the clip offset: the best lag is the window's offset, its
   peak over the median is the window's confidence, and the correlation at the clip's own
   offset says whether the window agrees with the rest of the clip.
5. **Flags**: a window with speech (the shared speech activity: the Silero VAD's speech widened
   by 0.5 s, where the VAD is installed, else the energy gate; see
   :class:`avdetect.forensics.audio.SpeechActivity`) is out of sync when its correlation at the clip offset
   collapses (far below the clip's typical value) or its best lag jumps away from the clip
   offset with a clear peak. Frames covered mostly by such windows form the reported spans.

Sign convention: a positive offset means the sound comes *later* than the mouth movement
(audio delayed); natural speech shows 0 to +0.1 s because lips move before the sound.

A trained sync head can replace the envelope predictor: any object with the
:class:`SyncScorer` methods (``fit``, ``global_curve``, ``window_curve``) can be passed as
``scorer``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from avdetect.forensics.evidence import Evidence, Track
from avdetect.forensics.registry import Analysis, Inputs, LaneSeries
from avdetect.forensics.signals import close_gaps, highpass, runs, squash
from avdetect.timegrid import frames_to_seconds, seconds_to_frame, seconds_to_frames_round

MAX_LAG = 25  # frames (+-1.0 s) searched per window, around the clip's offset (shifts up to 1 s show as jumps)
GLOBAL_MAX_LAG = 25  # frames (+-1.0 s) searched for the whole-clip offset
WINDOW_S = 2.0
HOP_S = 0.5
N_COMPONENTS = 6
N_FOLDS = 5
RIDGE = 0.05
HP_FRAMES = 13  # high-pass length (frames, ~0.5 s) for both signals: keeps syllable-rate detail
MAX_FIT_FRAMES = 20_000  # longer clips: the global fit uses an even subsample of frames
MIN_VALID = 0.6  # a window needs this fraction of frames with a face
MIN_SPEECH = 0.3  # ... and this fraction of speech frames to be judged
SHAPE_COLUMNS = (0,)  # landmark features the sync model reads (FACE_FEATURES indices: 0 lip aperture)
LANDMARK_MIN = 0.8  # lip aperture joins the features when measured on this fraction of the frames with a face
JUMP_PEAK = 0.25  # a window's own peak must stand this far above its median to count as a jump
JUMP_DROP = 0.2  # ... and its correlation at the clip offset must drop this far below typical
COLLAPSE_DROP = 0.35  # correlation at the clip offset this far below typical (and < 0.1): collapse
NATURAL_S = (-0.06, 0.14)  # whole-clip offsets of natural speech (s): lips lead the sound by 0..0.1 s
# the whole-clip offset counts as evidence only as far as its peak stands above the best lag in
# the natural range: squash(margin, 0.05, 0.10). On real clips the agreement curve often has a
# second, near-equal peak 0.4-0.7 s away (speech rhythm), and the curve moves by about 0.05 (its
# noise, from fits on alternate 2-s blocks) to 0.2 when the face boxes change slightly: so the
# argmax flipped between the two peaks with the face tracker's settings, and the offset item with
# it, between 0 and 0.86, on real footage.
NATURAL_MARGIN = (0.05, 0.10)
# With the VAD, the speech fraction of a window counts frames within this of speech: lips move
# before and after the sound, and a window holding a speech onset or offset is the most telling
# one. (Without it, windows where a shifted or replaced sound falls silent while the mouth keeps
# moving went unjudged: 8 of 16 manipulated spans found on the sample clips, 12 with 0.5 s, 11
# with the energy gate, whose floor lets trailing sounds and another recording's hiss count.)
VAD_CONTEXT_S = 0.5

RELIABILITY = (
    "The sync track learns each clip's own mouth-to-sound relation without a trained model; it is "
    "reliable on frontal, well-lit talking heads with clear speech, weak on profile views, occluded "
    "mouths, music or several talkers; a 2 s window cannot localise a change more finely than about 0.5 s, "
    "and a span shorter than about 2.5 s gets at most moderate strength because natural speech has short stretches "
    "where mouth and sound agree poorly."
)


class SyncScorer(Protocol):
    """What the sync track needs from a scorer (the envelope one here, a model's sync head later)."""

    def fit(self, mouth: np.ndarray, valid: np.ndarray, envelope: np.ndarray, speech: np.ndarray,
            shape: np.ndarray | None = None) -> None:
        """``shape``: the per-frame landmark features (``FaceFeatures.shape``, NaN where not measured), or None."""

    def global_curve(self) -> np.ndarray:
        """(2 L + 1,) agreement of mouth and sound at each lag -L..L over the whole clip (L <= GLOBAL_MAX_LAG)."""

    def window_curve(self, start: int, stop: int) -> tuple[np.ndarray, float]:
        """(2 * MAX_LAG + 1,) agreement over frames [start, stop) at each lag *relative to the clip
        offset* (index MAX_LAG = the clip offset), and the fraction of frames the scorer could use."""


def n_components(n_frames: int, frames_per_weight: int = 8) -> int:
    """Principal components used for ``n_frames`` frames with a face: N_COMPONENTS, fewer on
    short clips (at least ``frames_per_weight`` frames per regression weight); 0: too short."""
    k = min(N_COMPONENTS, n_frames // (2 * frames_per_weight))
    return k if k >= 2 else 0


def _nearest_filled(X: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rows of X where ``ok`` is False replaced by the nearest row where it is True (so that
    high-passing does not smear zeros or NaN); X itself when no row is ok."""
    return X[_nearest_rows(ok)] if ok.any() else X


def _nearest_rows(ok: np.ndarray) -> np.ndarray:
    """(T,) for each row, the first row at or after it where ``ok`` (the last such row past it);
    every row itself when none is ok."""
    idx = np.flatnonzero(ok)
    if not len(idx):
        return np.arange(len(ok))
    return idx[np.clip(np.searchsorted(idx, np.arange(len(ok))), 0, len(idx) - 1)]


def lip_aperture_features(shape: np.ndarray | None, valid: np.ndarray) -> np.ndarray | None:
    """(T, 2) high-passed lip aperture and its |frame-to-frame change|, standardised, from the
    landmark features (``FaceFeatures.shape``); None when landmarks are missing on more than
    1 - :data:`LANDMARK_MIN` of the frames with a face (the Haar backend measures none)."""
    if shape is None or not valid.any():
        return None
    cols = []
    for c in SHAPE_COLUMNS:
        ap = np.asarray(shape, np.float64)[: len(valid), c]
        ok = valid & np.isfinite(ap)
        if ok.sum() < LANDMARK_MIN * valid.sum():
            return None
        ap = highpass(_nearest_filled(ap, ok), HP_FRAMES)
        sd = ap[ok].std()
        if not sd > 1e-9:
            return None
        ap = ap / sd
        cols += [ap, np.abs(np.diff(ap, prepend=ap[:1]))]
    return np.stack(cols, 1).astype(np.float32)


def feature_sets(mouth: np.ndarray, valid: np.ndarray, frames_per_weight: int = 8,
                 shape: np.ndarray | None = None) -> list[np.ndarray]:
    """The sync model's visual feature sets, each fitted by its own regression: the mouth pixels
    (T, 2 k), and, where landmarks were measured, the lip aperture (T, 2)."""
    lips = lip_aperture_features(shape, valid)
    return [_visual_features(mouth, valid, frames_per_weight)] + ([] if lips is None else [lips])


#: Rows of mouth features high-passed at a time (memory stays flat in the clip's length).
_CHUNK_ROWS = 2048


def _highpassed_chunks(flat: np.ndarray, near: np.ndarray):
    """(start, rows) of ``highpass(flat[near])`` in float32, :data:`_CHUNK_ROWS` rows at a time:
    each chunk is high-passed with HP_FRAMES rows of context on both sides, so its rows equal
    those of the whole matrix high-passed at once (to rounding) without ever holding it."""
    T = len(near)
    for a in range(0, T, _CHUNK_ROWS):
        b = min(T, a + _CHUNK_ROWS)
        lo, hi = max(0, a - HP_FRAMES), min(T, b + HP_FRAMES)
        h = highpass(flat[near[lo:hi]].astype(np.float32), HP_FRAMES)
        yield a, h[a - lo: b - lo].astype(np.float32)


def principal_axes(X: np.ndarray, k: int) -> np.ndarray:
    """(k, d) float32: the ``k`` leading principal axes of the centred rows ``X`` (n, d), the
    right singular vectors of its ``k`` largest singular values, from the eigenvectors of the
    smaller of the two Gram matrices (``X^T X`` or ``X X^T``, in float64). On the 3000 x 528
    lips rows of a 2-min clip this took 0.13 s against the SVD's 0.31 s (alone), which also computes
    the other 522 axes and the (n, 528) left vectors. Each axis' sign is fixed so that its
    largest loading is positive (an SVD leaves the sign to the LAPACK build)."""
    n, d = X.shape
    k = min(k, n, d)
    x = X.astype(np.float64)
    if n >= d:
        _, v = np.linalg.eigh(x.T @ x)  # (d, d) eigenvectors, eigenvalues ascending
        axes = v[:, ::-1][:, :k].T  # (k, d)
    else:
        w, u = np.linalg.eigh(x @ x.T)  # (n, n): the left singular vectors
        u, w = u[:, ::-1][:, :k], w[::-1][:k]
        axes = (u.T @ x) / np.sqrt(np.maximum(w, 1e-300))[:, None]  # v_i = X^T u_i / s_i
    big = np.abs(axes).argmax(axis=1)
    axes = axes * np.sign(axes[np.arange(len(axes)), big])[:, None]
    return axes.astype(np.float32)


def _visual_features(mouth: np.ndarray, valid: np.ndarray, frames_per_weight: int = 8) -> np.ndarray:
    """(T, 2 k): PCA of high-passed lips thumbnails and |frame-to-frame change| (rows without a
    face take the nearest face's thumbnail first, so that high-passing does not smear zeros)."""
    T = len(mouth)
    flat = mouth.reshape(T, -1)
    near = _nearest_rows(valid)
    fit_rows = np.flatnonzero(valid)
    k = n_components(int(valid.sum()), frames_per_weight)
    if len(fit_rows) > 4000:
        fit_rows = fit_rows[np.linspace(0, len(fit_rows) - 1, 4000).astype(int)]
    if k == 0:
        return np.zeros((T, 2), np.float32)
    fit = np.concatenate([h[fit_rows[(fit_rows >= a) & (fit_rows < a + len(h))] - a]
                          for a, h in _highpassed_chunks(flat, near)])
    mu = fit.mean(0)
    vt = principal_axes(fit - mu, k)  # (k, pixels)
    P = np.empty((T, k), np.float32)
    for a, h in _highpassed_chunks(flat, near):
        P[a: a + len(h)] = (h - mu) @ vt.T  # (rows, k)
    D = np.abs(np.diff(P, axis=0, prepend=P[:1]))
    return np.concatenate([P, D], 1)


def _envelope(speech_env: np.ndarray) -> np.ndarray:
    """Log speech-band energy floored 30 dB below the clip's loudest frames, high-passed over HP_FRAMES."""
    if len(speech_env) == 0:
        return speech_env.astype(np.float64)
    energy = np.exp(speech_env - speech_env.max())
    return highpass(np.log(energy + 1e-3), HP_FRAMES)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 1e-12 else 0.0


def _corr_rows(a: np.ndarray, B: np.ndarray) -> np.ndarray:
    """:func:`_corr` of ``a`` (n,) with each row of ``B`` (k, n), the same arithmetic row by row."""
    a = a - a.mean()
    B = B - B.mean(axis=1, keepdims=True)
    d = np.sqrt((a * a).sum() * (B * B).sum(axis=1))
    num = (B * a).sum(axis=1)
    return np.where(d > 1e-12, num / np.where(d > 1e-12, d, 1.0), 0.0)


def _ridge_fit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Xs = (X - mu) / sd
    w = np.linalg.solve(Xs.T @ Xs + RIDGE * len(Xs) * np.eye(X.shape[1]), Xs.T @ (y - y.mean()))
    return mu, sd, w, float(y.mean())


class EnvelopeSyncScorer:
    """The training-free scorer: a per-clip mouth -> speech-envelope ridge regression (see the module doc)."""

    def __init__(self, max_lag: int = GLOBAL_MAX_LAG, cross_fit: bool = False, frames_per_weight: int = 8):
        self.max_lag = max_lag
        self.cross_fit = cross_fit
        self.frames_per_weight = frames_per_weight
        self._global: np.ndarray | None = None
        self.pred: np.ndarray | None = None  # visual speech envelope (T,), NaN where unknown
        self.offset = 0

    def fit(self, mouth: np.ndarray, valid: np.ndarray, envelope: np.ndarray, speech: np.ndarray,
            shape: np.ndarray | None = None) -> None:
        T = len(valid)
        # every lag is fitted on the same frames, those at least L from either end: on a short clip
        # the search is narrowed so that these are >= 2/3 of the frames (3 s: +-12 frames, not +-25)
        L = int(min(self.max_lag, max(2, T // 6)))
        self.valid = valid
        self.y = _envelope(envelope)
        self.sets = [X for X in feature_sets(mouth, valid, self.frames_per_weight, shape) if X.any()]
        folds = np.minimum(np.arange(T) * N_FOLDS // max(1, T), N_FOLDS - 1)
        rows = np.flatnonzero(valid[: T])
        rows = rows[(rows - L >= 0) & (rows + L < T)]
        if len(rows) > MAX_FIT_FRAMES:
            rows = rows[np.linspace(0, len(rows) - 1, MAX_FIT_FRAMES).astype(int)]
        fitted = [X for X in self.sets if len(rows) >= 3 * X.shape[1]]
        curve = np.zeros(2 * L + 1)
        for k, lag in enumerate(range(-L, L + 1)):  # each feature set's agreement, averaged
            for X in fitted:
                curve[k] += _corr(self._cross_fit(X, self.y, rows, folds, lag), self.y[rows + lag]) / len(fitted)
        self._global = curve
        self.offset = int(np.argmax(curve)) - L if fitted else 0
        # each set's visual speech envelope at the clip's offset, for every frame with a face
        all_rows = np.flatnonzero(valid)
        all_rows = all_rows[(all_rows + self.offset >= 0) & (all_rows + self.offset < T)]
        self.preds = []
        for X in self.sets:
            if len(all_rows) >= 3 * X.shape[1]:
                pred = np.full(T, np.nan)
                pred[all_rows] = self._cross_fit(X, self.y, all_rows, folds, self.offset)
                self.preds.append(pred)

    def _cross_fit(self, X, y, rows, folds, lag) -> np.ndarray:
        """Predictions of y[rows + lag] from X[rows]: out-of-fold when cross_fit, else in-sample."""
        out = np.zeros(len(rows))
        if not self.cross_fit:
            mu, sd, w, b = _ridge_fit(X[rows], y[rows + lag])
            return ((X[rows] - mu) / sd) @ w + b
        f = folds[rows]
        for k in range(N_FOLDS):
            test = f == k
            train = ~test
            if test.sum() == 0 or train.sum() < 2 * X.shape[1]:
                continue
            mu, sd, w, b = _ridge_fit(X[rows[train]], y[rows[train] + lag])
            out[test] = ((X[rows[test]] - mu) / sd) @ w + b
        return out

    def global_curve(self) -> np.ndarray:
        return self._global if self._global is not None else np.zeros(2 * self.max_lag + 1)  # (2 L + 1,)

    def window_curve(self, start: int, stop: int) -> tuple[np.ndarray, float]:
        L = MAX_LAG
        t = np.arange(start, stop)
        curve = np.zeros(2 * L + 1)
        if not self.preds:
            return curve, 0.0
        ok = ~np.isnan(self.preds[0][t])
        frac = float(ok.mean()) if len(t) else 0.0
        t = t[ok]
        if len(t) < 10:
            return curve, frac
        for pred in self.preds:  # each feature set's agreement, averaged
            curve += self._window_corr(pred[t], t) / len(self.preds)
        return curve, frac

    def _window_corr(self, p: np.ndarray, t: np.ndarray) -> np.ndarray:
        L, T = MAX_LAG, len(self.y)
        curve = np.zeros(2 * L + 1)
        tt = t[None, :] + self.offset + np.arange(-L, L + 1)[:, None]  # (2L+1, n): aligned at the clip offset
        inside = (tt >= 0) & (tt < T)
        whole = inside.all(axis=1)
        if whole.any():  # lags whose frames all lie inside the clip: all at once
            curve[whole] = _corr_rows(p, self.y[tt[whole]])
        for k in np.flatnonzero(~whole):  # near the clip's ends: the frames inside only
            ins = inside[k]
            curve[k] = _corr(p[ins], self.y[tt[k, ins]]) if ins.sum() >= 10 else 0.0
        return curve


@dataclass
class SyncTrack:
    """Per-window sync measurements (times are window centres, in seconds)."""

    times_s: np.ndarray
    offset_s: np.ndarray  # best lag per window (NaN when the window was not judged)
    confidence: np.ndarray  # peak - median of the window's curve
    corr_at_clip_offset: np.ndarray
    speech: np.ndarray  # speech fraction
    judged: np.ndarray  # bool: enough face and speech to judge
    flagged: np.ndarray  # bool
    clip_offset_s: float
    clip_confidence: float
    clip_margin: float = 0.0  # the global curve's peak minus its best lag within NATURAL_S (0: the peak is natural)

    def to_track(self) -> Track:
        return Track(self.times_s, {
            "offset_s": self.offset_s, "confidence": self.confidence, "corr_at_clip_offset": self.corr_at_clip_offset,
            "speech_fraction": self.speech, "judged": self.judged.astype(np.int8), "flagged": self.flagged.astype(np.int8),
        }, f"per-window ({WINDOW_S:g} s, hop {HOP_S:g} s) AV offset (s, + = audio late) and sync confidence")


def window_starts(T: int) -> tuple[np.ndarray, int]:
    w = seconds_to_frames_round(WINDOW_S)
    if T < w:
        return np.array([0]), T
    n = int(np.floor(frames_to_seconds(T - w) / HOP_S)) + 1
    starts = seconds_to_frames_round(np.arange(n) * HOP_S)  # the hop is 12.5 frames: starts round half to even
    if starts[-1] + w < T:  # cover the tail
        starts = np.append(starts, T - w)
    return starts, w


def sync_track(mouth: np.ndarray, valid: np.ndarray, speech_env: np.ndarray, speech: np.ndarray,
               scorer: SyncScorer | None = None, shape: np.ndarray | None = None) -> tuple[SyncTrack, np.ndarray]:
    """Compute the per-window sync track. Returns (track, per-frame flag score in [0, 1]).
    ``shape``: per-frame landmark features (lip aperture first), or None (pixels only)."""
    T = min(len(valid), len(speech_env))
    mouth, valid, speech_env, speech = mouth[:T], valid[:T], speech_env[:T], speech[:T]
    scorer = scorer or EnvelopeSyncScorer()
    scorer.fit(mouth, valid, speech_env, speech, shape=None if shape is None else shape[:T])
    L = MAX_LAG
    g = scorer.global_curve()
    clip_lag = int(np.argmax(g)) - (len(g) - 1) // 2
    clip_conf = float(g.max() - np.median(g))
    lags_s = frames_to_seconds(np.arange(len(g)) - (len(g) - 1) // 2)
    natural = (lags_s >= NATURAL_S[0]) & (lags_s <= NATURAL_S[1])  # holds lag 0: never empty
    clip_margin = float(g.max() - g[natural].max())
    starts, w = window_starts(T)
    n = len(starts)
    off = np.full(n, np.nan)
    conf = np.zeros(n)
    at0 = np.zeros(n)
    sp = np.zeros(n)
    judged = np.zeros(n, bool)
    for k, s in enumerate(starts):
        curve, frac = scorer.window_curve(s, s + w)
        sp[k] = speech[s : s + w].mean() if w else 0.0
        judged[k] = frac >= MIN_VALID and sp[k] >= MIN_SPEECH and np.any(curve)
        if not judged[k]:
            continue
        b = int(np.argmax(curve))
        off[k] = frames_to_seconds(clip_lag + b - L)
        conf[k] = curve[b] - np.median(curve)
        at0[k] = curve[L]
    flagged = np.zeros(n, bool)
    if judged.sum() >= 1:
        ref = np.median(at0[judged]) if judged.sum() >= 4 else max(0.3, float(np.median(at0[judged])))
        jump = (judged & (np.abs(off - frames_to_seconds(clip_lag)) >= frames_to_seconds(3)) & (conf >= JUMP_PEAK)
                & (at0 < ref - JUMP_DROP))
        collapse = judged & (at0 < min(0.1, ref - COLLAPSE_DROP))
        flagged = jump | collapse
    # per-frame: the fraction of judged windows covering the frame that are flagged
    cover = np.zeros(T)
    hits = np.zeros(T)
    for k, s in enumerate(starts):
        if judged[k]:
            cover[s : s + w] += 1
            hits[s : s + w] += flagged[k]
    frame_score = np.divide(hits, cover, out=np.zeros(T), where=cover > 0)
    track = SyncTrack(
        times_s=frames_to_seconds(starts + w / 2.0), offset_s=off, confidence=conf, corr_at_clip_offset=at0, speech=sp,
        judged=judged, flagged=flagged, clip_offset_s=frames_to_seconds(clip_lag), clip_confidence=clip_conf,
        clip_margin=clip_margin,
    )
    return track, frame_score


def span_support(n_windows: int) -> float:
    """How much a span flagged by ``n_windows`` overlapping windows can be trusted, in [0, 1].

    Windows are 2 s long with a 0.5 s hop, so n flagged windows cover about (n + 3) / 2 seconds but
    hold far fewer independent observations. On the untouched sample clips (and 24 s loops of
    them) stretches of 2 s where the per-clip mouth model simply fits badly (a smile, a mouth shape
    the rest of the clip lacks) are flagged by 2-3 windows with drops as large as a real
    manipulation's, whereas every manipulated 3 s span was flagged by 3-8 windows. So support
    grows linearly from 0 at one window to 1 at five (a span of about 4 s, or a 2.5 s span flagged
    throughout): a short span is still reported, with at most moderate strength.
    """
    return float(min(1.0, max(0.0, (n_windows - 1) / 4)))


def sync_evidence(track: SyncTrack, frame_score: np.ndarray, speech: np.ndarray) -> list[Evidence]:
    """Evidence items: the whole-clip offset, and spans where sync breaks while speech is present."""
    ev: list[Evidence] = []
    n_judged = int(track.judged.sum())
    off_ms = track.clip_offset_s * 1000
    # whole-clip offset: natural speech sits at about 0..+100 ms (lips lead the sound)
    mid, half = (NATURAL_S[0] + NATURAL_S[1]) / 2, (NATURAL_S[1] - NATURAL_S[0]) / 2
    dev = max(0.0, abs(track.clip_offset_s - mid) - half)
    trust = squash(track.clip_confidence, 0.05, 0.15)
    clear = squash(track.clip_margin, *NATURAL_MARGIN) if dev > 0 else 1.0  # above the natural range's best lag
    ev.append(Evidence(
        kind="sync_offset", start_s=None, end_s=None,
        value={"offset_s": track.clip_offset_s, "offset_frames": seconds_to_frames_round(track.clip_offset_s),
               "confidence": track.clip_confidence, "margin_over_natural": track.clip_margin, "windows_judged": n_judged},
        explanation=(f"over the whole clip the sound is best aligned with the mouth when shifted {abs(off_ms):.0f} ms "
                     f"({'audio late' if off_ms > 0 else 'audio early' if off_ms < 0 else 'no shift'}); "
                     + ("natural speech lies within about -60..+140 ms" if dev == 0 else "this is outside the natural -60..+140 ms range")
                     + (f", confidence {track.clip_confidence:.2f}" if trust >= 0.5 else f", but the confidence is low ({track.clip_confidence:.2f})")
                     + (f"; a lag in the natural range fits almost as well (only {track.clip_margin:.2f} lower)"
                        if dev > 0 and clear < 0.5 else "")),
        strength=(squash(dev, 0.25, 0.45) if dev > 0 else 0.0) * trust * clear * min(1.0, n_judged / 12),
        reliability=RELIABILITY,
    ))
    flags = frame_score >= 0.5
    flags = close_gaps(flags, seconds_to_frame(0.5))  # 12 frames
    for s, e in runs(flags):
        if e - s < seconds_to_frame(0.75) or speech[s:e].mean() < 0.2:  # 18 frames
            continue
        t0, t1 = frames_to_seconds(s), frames_to_seconds(e)
        inside = track.flagged & (track.times_s >= t0) & (track.times_s <= t1)
        if not inside.any():
            continue
        offs = track.offset_s[inside]
        med_off = float(np.nanmedian(offs))
        spread = float(np.nanstd(offs))
        consistent = spread <= frames_to_seconds(2.5) and abs(med_off - track.clip_offset_s) >= frames_to_seconds(3)
        drop = float(np.median(np.median(track.corr_at_clip_offset[track.judged]) - track.corr_at_clip_offset[inside]))
        if consistent:
            what = (f"the sound is shifted by about {abs(med_off - track.clip_offset_s) * 1000:.0f} ms "
                    f"{'later' if med_off > track.clip_offset_s else 'earlier'} than in the rest of the clip")
        else:
            what = f"mouth movements and speech stop matching (no consistent alignment within +-{frames_to_seconds(MAX_LAG):g} s)"
        ev.append(Evidence(
            kind="sync_span", start_s=t0, end_s=t1,
            value={"window_offset_s": med_off, "clip_offset_s": track.clip_offset_s, "corr_drop": drop,
                   "offset_spread_s": spread, "windows": int(inside.sum())},
            explanation=f"between {t0:.2f} s and {t1:.2f} s {what} while someone speaks: audio replaced, shifted or dubbed in this span",
            strength=squash(drop, 0.2, 0.45) * span_support(int(inside.sum())) * (0.5 + 0.5 * squash(track.clip_confidence, 0.05, 0.15)),
            reliability=RELIABILITY,
        ))
    return ev


def speech_context(speech: np.ndarray, seconds: float) -> np.ndarray:
    """``speech`` widened by ``seconds`` on each side (frames near speech count as speech)."""
    k = seconds_to_frames_round(seconds)
    flags = np.asarray(speech, bool)
    if k <= 0 or not flags.any():
        return flags.copy()
    c = np.concatenate([[0], np.cumsum(flags)])
    T = len(flags)
    idx = np.arange(T)
    return (c[np.minimum(T, idx + k + 1)] - c[np.maximum(0, idx - k)]) > 0


def _run(inputs: Inputs) -> tuple[list[Evidence], dict[str, Track]]:
    ff, af = inputs.faces, inputs.audio
    # where someone speaks: the shared speech activity (the VAD's when installed, else the energy gate)
    speech = inputs.speech.frames if inputs.speech is not None else af.speech
    if inputs.speech is not None and inputs.speech.gate == "vad":
        speech = speech_context(speech, VAD_CONTEXT_S)
    track, frame_score = sync_track(ff.mouth, ff.valid, af.speech_env, speech, scorer=inputs.sync_scorer, shape=ff.shape)
    return sync_evidence(track, frame_score, speech[: len(frame_score)]), {"sync": track.to_track()}


SYNC = Analysis(
    name="sync", kinds=("sync_offset", "sync_span"), labels={"sync_offset": "lip-sync offset", "sync_span": "lip sync"},
    needs=("audio", "faces", "speech"), run=_run,
    series={"sync_span": LaneSeries("sync", ("corr_at_clip_offset",), 1.0, "min", mask="judged",
                                    note="how well sound and mouth match, per window, higher = better")},
)
