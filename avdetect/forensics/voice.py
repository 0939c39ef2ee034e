"""Voice descriptors per 40 ms frame (cepstral envelope, pitch) and the speaker-change cue.

Features come from the power spectrum the audio feature pass already computes (one
Hann-windowed 1024-point FFT per frame), so they cost two small matrix products and one inverse
FFT per frame:

* **MFCC 1-12**: log mel energies (40 bands, 60-7600 Hz) turned into cepstral coefficients;
  coefficient 0 (the level) is dropped. They describe the vocal-tract envelope (and the
  channel, which is constant within one recording).
* **F0**: the lag of the highest peak of the frame's autocorrelation (computed from the power
  spectrum and divided by the window's own autocorrelation) in the 60-400 Hz range, with a
  check against picking a sub-harmonic; ``voicing`` is that peak's height (0..1).

**Voice change cue** (:func:`voice_change_evidence`), on speech frames only. The voice of a range
of frames is summarised by its MFCC means (standardised by the clip's own spread) and the mean
pitch, in semitones, of its clearly voiced frames (:func:`clean_pitch`). Two ranges differ by
``z = sqrt((e / 0.3)^2 + (p / unit)^2)``: ``e`` the RMS MFCC mean difference beyond what the
number of frames and the clip's own variation explain, ``p`` the pitch difference, whose unit
(2 semitones) widens when few frames are voiced or the clip's own pitch varies more. Spans of
2-16 s are slid over the clip and scored against 3-8 s on each side; a span is reported when its
voice differs from *both* sides (pitch by at least 2.5 semitones each), more than the two sides
differ from each other. Prefix sums make every comparison O(1): the cost is linear in the
length, a few ms per minute of audio, and the memory a few arrays per frame.

Calibration (real clips, ../shared/samples): untouched speech of one talker scores at most 1.85
(strength 0.5 is at 2.5); another talker's 3 s inserted scores 2.4-5.6 when the pitch differs by
4.4-14 semitones. Two talkers of the same sex and register recorded alike (the two GRID clips:
~3.5 semitones apart, same MFCC means) are not told apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avdetect.forensics.evidence import Evidence, Track
from avdetect.forensics.signals import pick_peaks, quiet_nan, squash
from avdetect.timegrid import SAMPLE_RATE, frames_to_seconds, seconds_to_frames_round

N_MFCC = 12
N_MEL = 40
MEL_RANGE = (60.0, 7600.0)
F0_RANGE = (60.0, 400.0)
VOICED = 0.5  # normalised autocorrelation peak above which a frame counts as voiced
STRONG_VOICING = 0.7  # pitch statistics use only frames at least this clearly voiced
QUIET_DB = 25.0  # ... and at most this far below the loudest frame within LOUD_WINDOW frames
LOUD_WINDOW = 50


def _mel_matrix(nfft: int) -> np.ndarray:
    """Triangular filters equally spaced on the HTK mel scale, peak 1 (librosa's ``htk=True,
    norm=None`` bank; written out because loading librosa's filters costs ~1.5 s and ~200 MB)."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(MEL_RANGE[0]), mel(MEL_RANGE[1]), N_MEL + 2))
    freqs = np.fft.rfftfreq(nfft, 1.0 / SAMPLE_RATE)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))  # (N_MEL, nfft/2+1)


def _dct_matrix() -> np.ndarray:
    n = np.arange(N_MEL)
    k = np.arange(1, N_MFCC + 1)[:, None]
    return np.sqrt(2.0 / N_MEL) * np.cos(np.pi * k * (n + 0.5) / N_MEL)  # (N_MFCC, N_MEL), orthonormal DCT-II rows 1..12


_CACHE: dict = {}


def _tables(nfft: int):
    if nfft not in _CACHE:
        win = np.hanning(nfft)
        wac = np.fft.irfft(np.abs(np.fft.rfft(win, 2 * nfft)) ** 2)[:nfft]
        _CACHE[nfft] = (_mel_matrix(nfft), _dct_matrix(), wac / wac[0])
    return _CACHE[nfft]


def voice_frame_features(spec: np.ndarray, nfft: int) -> dict[str, np.ndarray]:
    """MFCC 1..12, F0 (Hz, 0 when unvoiced) and voicing (0..1) from power spectra ``spec`` (n, nfft/2+1)."""
    mel, dct, wac = _tables(nfft)
    n = spec.shape[0]
    if n == 0:
        return dict(mfcc=np.zeros((0, N_MFCC), np.float32), f0=np.zeros(0, np.float32), voicing=np.zeros(0, np.float32))
    logmel = np.log(spec @ mel.T + 1e-10)  # (n, N_MEL)
    mfcc = logmel @ dct.T  # (n, N_MFCC)
    ac = np.fft.irfft(spec, nfft, axis=1)  # (n, nfft) circular autocorrelation of the windowed frame
    lo, hi = int(SAMPLE_RATE / F0_RANGE[1]), int(np.ceil(SAMPLE_RATE / F0_RANGE[0]))  # not time: pitch periods in samples
    lags = np.arange(lo - 1, hi + 2)
    r = ac[:, lags] / np.maximum(ac[:, :1], 1e-12) / wac[lags][None, :]  # (n, L) normalised
    inner = r[:, 1:-1]
    peak = (inner >= r[:, :-2]) & (inner >= r[:, 2:])
    cand = np.where(peak, inner, -np.inf)
    best = np.argmax(cand, 1)
    rows = np.arange(n)
    val = cand[rows, best]
    lag = lags[1:-1][best].astype(np.float64)
    # a sub-harmonic peak (twice the true period) can be as high as the true one: prefer the
    # shorter lag when the peak near half the lag is nearly as high
    half = np.rint(lag / 2).astype(int)
    ok_half = half - 1 >= lags[0] + 1
    hv = np.full(n, -np.inf)
    if ok_half.any():
        idx = np.clip(half[:, None] + np.arange(-1, 2)[None, :] - lags[0], 0, len(lags) - 1)
        hv = np.where(ok_half, r[rows[:, None], idx].max(1), -np.inf)
        hi_idx = idx[rows, np.argmax(r[rows[:, None], idx], 1)]
    use_half = ok_half & np.isfinite(val) & (hv >= 0.85 * val)
    if ok_half.any():
        lag = np.where(use_half, lags[hi_idx], lag)
        val = np.where(use_half, hv, val)
    # parabolic refinement of the lag
    li = np.clip(np.rint(lag).astype(int) - lags[0], 1, len(lags) - 2)
    y0, y1, y2 = r[rows, li - 1], r[rows, li], r[rows, li + 1]
    den = y0 - 2 * y1 + y2
    delta = np.where(np.abs(den) > 1e-9, 0.5 * (y0 - y2) / np.where(np.abs(den) > 1e-9, den, 1.0), 0.0)
    lag = lags[li] + np.clip(delta, -0.5, 0.5)
    voicing = np.clip(np.nan_to_num(val, neginf=0.0), 0.0, 1.0)
    f0 = np.where(voicing >= VOICED, SAMPLE_RATE / lag, 0.0)  # not time: period in samples -> Hz
    return dict(mfcc=mfcc.astype(np.float32), f0=f0.astype(np.float32), voicing=voicing.astype(np.float32))


# ---------------------------------------------------------------------------------------
# speaker / voice change
class _Sums:
    """Prefix sums of masked features: count, sum and sum of squares over any frame range in O(1)."""

    def __init__(self, x: np.ndarray, mask: np.ndarray):
        x = np.where(mask[:, None], x, 0.0)
        self.n = np.concatenate([[0.0], np.cumsum(mask, dtype=np.float64)])
        self.s1 = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, 0)])
        self.s2 = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x * x, 0)])
        self.T = len(mask)

    def mean(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(count (n,), mean (n, D)) over frames [lo, hi) (clipped to the clip)."""
        lo, hi = np.clip(lo, 0, self.T), np.clip(hi, 0, self.T)
        n = self.n[hi] - self.n[lo]
        return n, (self.s1[hi] - self.s1[lo]) / np.maximum(n, 1.0)[:, None]


def clean_pitch(f0: np.ndarray, voicing: np.ndarray, speech: np.ndarray, level: np.ndarray, half_window: int = 12,
                max_dev: float = 6.0) -> np.ndarray:
    """Semitones re 100 Hz of reliably voiced speech frames (NaN elsewhere).

    Dropped: frames with a weak pitch peak; frames more than 25 dB below the loudest frame within
    2 s (``level`` is a natural-log energy; hum and breath between words give spurious pitch
    there); octave jumps (over ``max_dev`` semitones from the median of the
    kept frames within ``half_window`` frames)."""
    from numpy.lib.stride_tricks import sliding_window_view

    T = len(f0)
    ok = speech & (f0 > 0) & (voicing >= STRONG_VOICING)
    if T == 0 or not ok.any():
        return np.full(T, np.nan)
    k = 2 * half_window + 1
    h = LOUD_WINDOW
    lev = np.pad(np.asarray(level, np.float64), h, mode="edge")
    loud = np.empty(T)
    chunk = 8192
    for c0 in range(0, T, chunk):
        loud[c0 : c0 + chunk] = sliding_window_view(lev[c0 : min(T, c0 + chunk) + 2 * h], 2 * h + 1).max(1)
    ok &= level >= loud - QUIET_DB / (10.0 / np.log(10.0))
    st = np.where(ok, 12.0 * np.log2(np.maximum(f0, 1.0) / 100.0), np.nan)
    pad = np.pad(st, half_window, constant_values=np.nan)
    out = st.copy()
    for c0 in range(0, T, chunk):
        view = sliding_window_view(pad[c0 : min(T, c0 + chunk) + 2 * half_window], k)
        with np.errstate(all="ignore"), quiet_nan():
            local = np.nanmedian(view, axis=1)
        seg = out[c0 : c0 + len(local)]
        seg[np.abs(seg - local) > max_dev] = np.nan
    return out


# distance between the voices of two frame ranges ------------------------------------------
BIAS = 3.0  # expected mean squared MFCC mean difference x n (frames are correlated: ~3x 1/n)
E0 = 0.3  # RMS MFCC mean difference (clip standard deviations) worth one unit of score
P0 = 2.0  # pitch difference (semitones) worth one unit of score
MIN_SPEECH = 15  # speech frames (0.6 s) a range needs to be compared
MIN_VOICED = 10  # clearly voiced frames a range needs for its pitch to count
PITCH_FRAMES = 15.0  # with n voiced frames a side, the pitch unit is P0 * sqrt(1 + 15 / n)
NULL_Q = 0.3  # quantile of a clip's comparisons taken as its own variation
NULL_MIN = 25  # comparisons needed to estimate it (else only the fixed floors apply)
M_REL = 1.0  # MFCC differences up to M_REL x the clip's own count for nothing
P_REL = 1.0  # the pitch unit is at least P_REL x the clip's own pitch variation


@dataclass
class VoiceStats:
    """Prefix sums over the clip's speech frames of standardised MFCCs and clean pitch."""

    mfcc: _Sums
    pitch: _Sums
    T: int

    @classmethod
    def from_frames(cls, speech: np.ndarray, mfcc: np.ndarray, f0: np.ndarray, voicing: np.ndarray, level: np.ndarray) -> "VoiceStats":
        x = np.nan_to_num(np.asarray(mfcc, np.float64))
        sel = x[speech]
        if len(sel) >= 2:
            x = (x - sel.mean(0)) / (sel.std(0) + 1e-6)
        st = clean_pitch(f0, voicing, speech, level)
        ok = np.isfinite(st)
        return cls(_Sums(x, speech), _Sums(np.nan_to_num(st)[:, None], ok), len(speech))

    def compare(self, a: tuple, b: tuple, null: tuple[float, float] = (0.0, 0.0)) -> dict[str, np.ndarray]:
        """Voice distance between frame ranges ``a = (lo, hi)`` and ``b`` (arrays of bounds).

        ``null = (m0, p0)``: the clip's own variation for ranges like these (typical mean squared
        MFCC mean difference, typical pitch difference in semitones); differences up to it count
        for nothing (MFCC) or set the unit (pitch).

        Returns arrays: ``z`` (combined score), ``m`` (raw mean squared MFCC mean difference),
        ``e`` (RMS MFCC mean difference in clip standard deviations, beyond the small-sample bias
        and the clip's own variation), ``p`` (pitch difference in semitones, NaN when a side has too
        few voiced frames), ``ok`` (both sides hold enough speech), and the pitch means ``pa``,
        ``pb`` (semitones re 100 Hz)."""
        na, ma = self.mfcc.mean(*a)
        nb, mb = self.mfcc.mean(*b)
        ok = (na >= MIN_SPEECH) & (nb >= MIN_SPEECH)
        inv = 1.0 / np.maximum(na, 1.0) + 1.0 / np.maximum(nb, 1.0)
        m = np.mean((ma - mb) ** 2, 1)
        e = np.sqrt(np.maximum(0.0, m - np.maximum(BIAS * inv, M_REL * null[0])))
        qa, pa = self.pitch.mean(*a)
        qb, pb = self.pitch.mean(*b)
        has_p = (qa >= MIN_VOICED) & (qb >= MIN_VOICED)
        p = np.where(has_p, np.abs(pa[:, 0] - pb[:, 0]), np.nan)
        # a median pitch over few voiced frames is noisy: widen its unit accordingly
        p_unit = np.maximum(P0 * np.sqrt(1.0 + PITCH_FRAMES / np.maximum(np.minimum(qa, qb), 1.0)), P_REL * null[1])
        z = np.sqrt((e / E0) ** 2 + np.nan_to_num(p / p_unit) ** 2)
        return dict(z=np.where(ok, z, 0.0), m=np.where(ok, m, np.nan), e=e, p=np.where(ok, p, np.nan), ok=ok,
                    pa=np.where(has_p, pa[:, 0], np.nan), pb=np.where(has_p, pb[:, 0], np.nan))


def _null(parts: list[dict]) -> tuple[float, float]:
    """The clip's own variation from many comparisons: low quantiles (an inserted span touches
    many of the comparisons; the quantile keeps to those it does not)."""
    m = np.concatenate([d["m"] for d in parts])
    p = np.concatenate([d["p"] for d in parts])
    m, p = m[np.isfinite(m)], p[np.isfinite(p)]
    return (float(np.quantile(m, NULL_Q)) if len(m) >= NULL_MIN else 0.0,
            float(np.quantile(p, NULL_Q)) if len(p) >= NULL_MIN else 0.0)


# spans whose voice differs from both sides ------------------------------------------------
SPAN_LENGTHS_S = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)  # span lengths scanned (edges are refined after)
CONTEXT_S = (3.0, 8.0)  # context compared on each side: the span's length, clipped to this range
REFINE_S = 0.5  # each edge of a found span is moved by up to this much to fit the voice change
MIN_SPAN_S = 2.0  # ... but the span stays at least this long
PITCH_GATE = 2.5  # semitones a span's median pitch must differ from each side's
CHANGE_WINDOW_S = 2.0  # window on each side for single change points
CANDIDATE = 2.0  # span score from which a span is kept
SPAN_HALF, SPAN_STRONG = 2.5, 4.0  # span score at strength 0.5 / 0.9 (untouched real speech: at most 1.85 seen)
CHANGE_HALF, CHANGE_STRONG, CHANGE_CAP = 2.7, 4.0, 0.4  # single change points never exceed 0.4
MAX_SPANS = 50
CHUNK = 16384


def _span_score(vs: VoiceStats, lo: np.ndarray, hi: np.ndarray, C: int, null=(0.0, 0.0)) -> tuple[np.ndarray, dict, dict, dict]:
    """Score of the spans [lo, hi) against ``C`` frames on each side: how much the inside's voice
    differs from the *closer* of the two sides, less half of how much the sides differ from each
    other (the talker's own variation across the span); 0 when the sides differ more."""
    il = vs.compare((lo, hi), (lo - C, lo), null)
    ir = vs.compare((lo, hi), (hi, hi + C), null)
    lr = vs.compare((lo - C, lo), (hi, hi + C), null)
    inner = np.minimum(il["z"], ir["z"])
    # the envelope alone also moves with what is being said (a run of similar vowels): a span
    # counts only when its pitch differs from both sides too
    pitched = (np.nan_to_num(il["p"]) >= PITCH_GATE) & (np.nan_to_num(ir["p"]) >= PITCH_GATE)
    ok = il["ok"] & ir["ok"] & pitched & (lr["z"] < inner)
    return np.where(ok, inner - 0.5 * lr["z"], 0.0), il, ir, lr


def _context(L: int) -> int:
    return int(np.clip(L, *seconds_to_frames_round(np.array(CONTEXT_S))))


def _scan(vs: VoiceStats, L: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Span score for every start frame of a span of ``L`` frames (chunked: bounded memory), and
    the clip's own variation for spans of that length (from the same comparisons)."""
    n = vs.T - L + 1
    out = np.zeros(max(0, n))
    C = _context(L)
    # the clip's own variation: span vs each side, on a subsample of positions (every 5th frame)
    s = np.arange(0, max(0, n), 5)
    null = _null([vs.compare((s, s + L), (s - C, s)), vs.compare((s, s + L), (s + L, s + L + C))]) if len(s) else (0.0, 0.0)
    for c0 in range(0, n, CHUNK):
        s = np.arange(c0, min(n, c0 + CHUNK))
        out[c0 : c0 + len(s)] = _span_score(vs, s, s + L, C, null)[0]
    return out, null


def _refine(vs: VoiceStats, s: int, L: int, null) -> tuple[int, int, int]:
    """Move both edges of span [s, s + L) by up to REFINE_S to maximise its score."""
    r = seconds_to_frames_round(REFINE_S)
    C = _context(L)
    a, b = np.meshgrid(np.arange(s - r, s + r + 1), np.arange(s + L - r, s + L + r + 1), indexing="ij")
    a, b = a.ravel(), b.ravel()
    keep = (a >= 0) & (b <= vs.T) & (b - a >= seconds_to_frames_round(MIN_SPAN_S))
    a, b = a[keep], b[keep]
    score = _span_score(vs, a, b, C, null)[0]
    k = int(np.argmax(score))
    return int(a[k]), int(b[k]), C


def _hz(st: float) -> float:
    return float(100.0 * 2.0 ** (st / 12.0)) if np.isfinite(st) else float("nan")


def _pitch_text(*hz: float) -> str:
    if any(not np.isfinite(h) for h in hz):
        return "pitch not measurable on every side"
    return "pitch " + " -> ".join(f"{h:.0f}" for h in hz) + " Hz"


VOICE_RELIABILITY = (
    "Compares the voice (median pitch, vocal-tract envelope from MFCCs) of a span with the speech "
    "on both sides of it, on speech frames only; it misleads when the clip genuinely holds several "
    "speakers (interview, dialogue, voice-over), over music or singing, and when one talker shouts, "
    "whispers or changes register for a while; a replacement spoken by the same person, or by a "
    "clone of their voice, leaves no trace. Also reacts to a change of microphone or room."
)


def voice_change_evidence(speech: np.ndarray, mfcc: np.ndarray, f0: np.ndarray, voicing: np.ndarray,
                          level: np.ndarray) -> tuple[list[Evidence], dict[str, Track]]:
    """Speaker/voice change cue: spans whose voice matches neither side, and single voice changes.

    Every span length in :data:`SPAN_LENGTHS_S` is slid over the clip; a span's score is how far
    its voice (pitch and MFCC means over its speech frames) lies from the closer side's voice, in
    units of the usual within-talker variation, less half the difference between the two sides.
    The best spans are taken greedily (overlapping ones dropped), their edges refined, and each
    becomes an ``audio_splice`` item. Single changes (the voice changes and stays changed) come
    from a two-window comparison and are capped at strength 0.4: speaker turns are normal.
    """
    speech = np.asarray(speech, bool)
    T = len(speech)
    ev: list[Evidence] = []
    w = seconds_to_frames_round(CHANGE_WINDOW_S)
    if T < 2 * w + 2 or speech.sum() < 2 * MIN_SPEECH:
        return ev, {}
    vs = VoiceStats.from_frames(speech, mfcc, f0, voicing, level)
    scans, nulls = {}, {}
    for L in (seconds_to_frames_round(x) for x in SPAN_LENGTHS_S):
        if L + 2 <= T:
            scans[L], nulls[L] = _scan(vs, L)
    spans: list[tuple[int, int]] = []
    while len(spans) < MAX_SPANS and scans:
        L, arr = max(scans.items(), key=lambda kv: kv[1].max(initial=0.0))
        if arr.size == 0 or arr.max() < CANDIDATE:
            break
        s = int(np.argmax(arr))
        for L2, a2 in scans.items():  # drop every span overlapping this one
            a2[max(0, s - L2 + 1) : s + L] = 0.0
        a, b, C = _refine(vs, s, L, nulls[L])
        sc, il, ir, lr = _span_score(vs, np.array([a]), np.array([b]), C, nulls[L])
        score = float(sc[0])
        if score < CANDIDATE:
            continue
        spans.append((a, b))
        pl, pi, pr = _hz(il["pb"][0]), _hz(il["pa"][0]), _hz(ir["pb"][0])
        e = float(min(il["e"][0], ir["e"][0]))
        t0, t1 = frames_to_seconds(a), frames_to_seconds(b)
        ev.append(Evidence(
            kind="audio_splice", start_s=t0, end_s=t1,
            value={"voice_score": score, "pitch_hz_before": pl, "pitch_hz_inside": pi, "pitch_hz_after": pr,
                   "envelope_difference": e, "sides_difference": float(lr["z"][0]),
                   "own_variation": {"mfcc": nulls[L][0], "pitch_semitones": nulls[L][1]}},
            explanation=(f"the voice changes at {t0:.1f} s and changes back at {t1:.1f} s: {_pitch_text(pl, pi, pr)}, "
                         f"vocal-tract envelope differs from both sides by {e:.1f} clip standard deviations beyond the "
                         f"talker's usual variation, while the two sides agree; consistent with another person's speech inserted"),
            strength=squash(score, SPAN_HALF, SPAN_STRONG), reliability=VOICE_RELIABILITY,
        ))
    # single change points
    t = np.arange(T + 1)
    curve = np.zeros(T)
    s = np.arange(w, T - w, 5)
    cnull = _null([vs.compare((s - w, s), (s, s + w))]) if len(s) else (0.0, 0.0)
    for c0 in range(0, T, CHUNK):
        tt = t[c0 : min(T, c0 + CHUNK)]
        curve[c0 : c0 + len(tt)] = vs.compare((tt - w, tt), (tt, tt + w), cnull)["z"]
    edges = [x for sp in spans for x in sp]
    for p in pick_peaks(curve, CHANGE_HALF, min_distance=w):
        if any(abs(p - x) <= w for x in edges):
            continue
        d = vs.compare((np.array([p - w]), np.array([p])), (np.array([p]), np.array([p + w])), cnull)
        if not np.nan_to_num(d["p"][0]) >= PITCH_GATE:  # as for spans: the envelope alone follows the words
            continue
        pl, pr = _hz(d["pa"][0]), _hz(d["pb"][0])
        tp = frames_to_seconds(p)
        ev.append(Evidence(
            kind="audio_splice", start_s=max(0.0, tp - 0.2), end_s=min(frames_to_seconds(T), tp + 0.2),
            value={"voice_change": float(curve[p]), "pitch_hz_before": pl, "pitch_hz_after": pr,
                   "envelope_difference": float(d["e"][0])},
            explanation=(f"the voice changes at {tp:.1f} s and stays changed: {_pitch_text(pl, pr)}, vocal-tract envelope "
                         f"differs by {float(d['e'][0]):.1f} clip standard deviations; a change of speaker (normal in a "
                         f"conversation) or speech of another person spliced in from here"),
            strength=CHANGE_CAP * squash(float(curve[p]), CHANGE_HALF, CHANGE_STRONG), reliability=VOICE_RELIABILITY,
        ))
    times = frames_to_seconds(np.arange(T))
    desc = f"voice difference between the {CHANGE_WINDOW_S:.0f} s before and after each frame (pitch and MFCC means over speech)"
    return ev, {"voice_change": Track(times, {"voice_change": curve}, desc)}
