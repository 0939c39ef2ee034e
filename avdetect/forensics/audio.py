"""Audio frame features (streamed) and audio splice cues.

Per 40 ms frame of the 16 kHz mono track (640 samples, Hann-windowed 1024-point FFT centred on
the frame): log energy, speech-band log energy (the envelope the sync analysis uses), a coarse
log spectral envelope (12 bands), spectral centroid, 95 % roll-off (bandwidth), flatness, DC
offset, a click measure (largest jump between neighbouring samples over the frame's RMS), and
voice descriptors from the same spectrum: MFCC 1-12, F0 and voicing.

**Speech activity** (:class:`SpeechActivity`, computed once per file and shared by the audio,
voice and sync analyses): where the Silero VAD is installed (:mod:`avdetect.vad`), a frame is
speech when the VAD says so (silero's hysteresis, gaps up to 200 ms bridged as below); otherwise
the **energy gate** of the audio features decides: speech-band energy at least 12 dB above the
clip's noise floor (10th percentile) and a spectrum that is not flat, short gaps bridged. The
energy gate cannot tell speech from music, a television or traffic; the VAD can, so splice and
sync cues are then measured only where someone actually speaks: the splice and voice features
over frames both gates call speech (sounding speech: the VAD also bridges pauses, which hold
the room's noise, not the voice), the noise floor over frames neither calls active, the sync
windows by the VAD's speech (:mod:`avdetect.forensics.sync`).

**Splice cues**: an inserted or replaced span of audio usually comes from another recording:
another room (noise floor; reverberation is not measured yet), another microphone or codec (bandwidth, spectral
envelope), another gain chain (level, DC). Two-window change scores (1 s each side) compare
the spectral features over speech frames, and the noise floor over quiet frames (no speech and,
with the VAD, no loud sound either); peaks
become change points; two change points whose outside neighbourhoods agree with each other
but not with the inside are reported as one suspicious span. Level changes inside speech and
silences are not flagged by themselves: the spectral and noise features ignore how loud the
talker speaks, and the noise floor is measured only where nobody speaks.

**Voice cue** (:mod:`avdetect.forensics.voice`): a span of speech replaced by another person's
speech recorded under similar conditions leaves the recording features alone but changes the
voice: per-frame MFCCs (vocal-tract envelope) and pitch are compared between a span and both
sides of it, over speech frames only; spans whose voice matches neither side are reported as
``audio_splice`` items too.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from avdetect.forensics.evidence import Evidence, Track
from avdetect.forensics.registry import Analysis, Inputs, LaneSeries
from avdetect.forensics.signals import change_scores, close_gaps, moving_average, pick_peaks, runs, squash
from avdetect.forensics.voice import voice_change_evidence, voice_frame_features
from avdetect.timegrid import (
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    frame_to_sample,
    frames_to_seconds,
    samples_to_seconds,
    seconds_to_frames_round,
)

log = logging.getLogger(__name__)

NFFT = 1024
N_BANDS = 12
CHUNK_FRAMES = 1500  # 60 s of audio decoded at a time
SPEECH_BAND = (200.0, 4000.0)
SPEECH_MARGIN_DB = 12.0
SPEECH_MAX_GAP_S = 0.2  # both gates: a talker's pause up to this long is still speech
# the VAD's hysteresis (silero's defaults, but pauses bridged up to SPEECH_MAX_GAP_S like the energy gate)
VAD_SETTINGS = {"threshold": 0.5, "min_speech_s": 0.25, "min_silence_s": SPEECH_MAX_GAP_S, "pad_s": 0.03}


@dataclass
class AudioFrames:
    """Per-frame audio features on the 25 fps grid (all arrays (T,) unless noted)."""

    log_energy: np.ndarray  # natural log of frame energy
    speech_env: np.ndarray  # natural log of 200-4000 Hz energy
    bands: np.ndarray  # (T, N_BANDS) log band energies (dB-like, natural log)
    centroid: np.ndarray  # Hz
    rolloff: np.ndarray  # Hz, 95 % of the energy below
    flatness: np.ndarray  # 0..1
    dc: np.ndarray  # mean sample value
    clicks: np.ndarray  # max |x[n+1] - x[n]| / rms
    speech: np.ndarray  # bool
    mfcc: np.ndarray  # (T, N_MFCC) cepstral coefficients 1..12 (voice / vocal-tract envelope)
    f0: np.ndarray  # Hz, 0 where the frame is not voiced
    voicing: np.ndarray  # 0..1, height of the pitch peak of the normalised autocorrelation

    def __len__(self) -> int:
        return len(self.log_energy)


def _frames_covering(n_samples: int) -> int:
    """Grid frames needed to hold ``n_samples`` samples (the last one possibly partial)."""
    return -(-int(n_samples) // SAMPLES_PER_FRAME)


def _band_edges() -> np.ndarray:
    # log-spaced bands between 100 Hz and 8 kHz
    return np.geomspace(100.0, SAMPLE_RATE / 2, N_BANDS + 1)


def _spectra(x: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames (n, NFFT): each frame's 640 samples in the middle, power spectra (n, F)) of
    ``n_frames`` frames from samples ``x`` (which extend NFFT/2 beyond each side)."""
    idx = np.arange(n_frames)[:, None] * SAMPLES_PER_FRAME + np.arange(NFFT)[None, :]
    frames = x[idx]  # (n, NFFT): frame i's 640 samples in the middle
    win = np.hanning(NFFT).astype(np.float32)
    return frames, np.abs(np.fft.rfft((frames - frames.mean(1, keepdims=True)) * win, axis=1)) ** 2  # (n, F)


_EPS = 1e-10


def _speech_env(spec: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    sb = (freqs >= SPEECH_BAND[0]) & (freqs <= SPEECH_BAND[1])
    return np.log(spec[:, sb].sum(1) + _EPS)


def _flatness(spec: np.ndarray) -> np.ndarray:
    return np.exp(np.mean(np.log(spec[:, 1:] + _EPS), 1)) / (np.mean(spec[:, 1:], 1) + _EPS)


def speech_features(x: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(speech_env, flatness) of :func:`_chunk_features` alone, the same values: what
    :func:`speech_activity` needs (the domain checks measure speech with it while windows pass)."""
    _, spec = _spectra(x, n_frames)
    return _speech_env(spec, np.fft.rfftfreq(NFFT, 1.0 / SAMPLE_RATE)), _flatness(spec)


def _chunk_features(x: np.ndarray, n_frames: int) -> dict:
    """Features of ``n_frames`` frames from samples ``x`` (which extend NFFT/2 beyond each side)."""
    half = (NFFT - SAMPLES_PER_FRAME) // 2
    frames, spec = _spectra(x, n_frames)
    core = frames[:, half : half + SAMPLES_PER_FRAME]
    freqs = np.fft.rfftfreq(NFFT, 1.0 / SAMPLE_RATE)
    total = spec.sum(1) + _EPS
    edges = _band_edges()
    bands = np.stack([spec[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in zip(edges[:-1], edges[1:])], 1)
    cum = np.cumsum(spec, 1)
    rolloff = freqs[np.minimum(np.argmax(cum >= 0.95 * cum[:, -1:], axis=1), len(freqs) - 1)]
    rms = np.sqrt(np.mean(core.astype(np.float64) ** 2, 1)) + 1e-6
    jumps = np.abs(np.diff(core, axis=1)).max(1)
    return dict(
        log_energy=np.log(total), speech_env=_speech_env(spec, freqs), bands=np.log(bands + _EPS),
        centroid=(spec * freqs).sum(1) / total, rolloff=rolloff, flatness=_flatness(spec), dc=core.mean(1),
        clicks=jumps / rms, **voice_frame_features(spec, NFFT),
    )


def _n_frames(media, n_frames: int | None) -> int:
    total = media.n_frames if (n_frames is None and media.has_video) else n_frames
    return _frames_covering(media.n_samples) if total is None else int(total)


def audio_frame_features(media, n_frames: int | None = None,
                         sink: Callable[[np.ndarray], None] | None = None) -> AudioFrames:
    """Per-frame features of ``media``'s audio on the 25 fps grid, decoded 60 s at a time.

    ``n_frames`` defaults to the audio length in frames (the video grid when there is video).
    ``sink``, when given, receives the samples of frames ``[0, n_frames)`` in order, piece by
    piece as they are decoded (zero-padded past the end of the audio), so that another per-frame
    measurement (the VAD) shares the decoding.
    """
    total = _n_frames(media, n_frames)
    half = (NFFT - SAMPLES_PER_FRAME) // 2
    parts: list[dict] = []
    cached = getattr(media, "_audio", None)
    for f0 in range(0, total, CHUNK_FRAMES):
        n = min(CHUNK_FRAMES, total - f0)
        s0 = frame_to_sample(f0) - half
        s1 = frame_to_sample(f0 + n) + (NFFT - SAMPLES_PER_FRAME - half)
        if cached is not None:
            src = cached
            lo, hi = max(0, s0), min(len(src), s1)
            seg = src[lo:hi]
        else:
            lo = max(0, s0)
            seg = media.read_audio(samples_to_seconds(lo), samples_to_seconds(s1))
        x = np.zeros(s1 - s0, np.float32)
        x[lo - s0 : lo - s0 + len(seg)] = seg[: s1 - lo]
        parts.append(_chunk_features(x, n))
        if sink is not None:
            sink(x[half : half + frame_to_sample(n)])
    if not parts:
        parts = [_chunk_features(np.zeros(NFFT, np.float32), 0)]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    speech = speech_activity(cat["speech_env"], cat["flatness"])
    return AudioFrames(speech=speech, **cat)


def speech_activity(speech_env: np.ndarray, flatness: np.ndarray) -> np.ndarray:
    """Energy-based speech activity: speech band >= noise floor + 12 dB and not noise-like."""
    if len(speech_env) == 0:
        return np.zeros(0, bool)
    floor = np.percentile(speech_env, 10)
    margin = SPEECH_MARGIN_DB / (10 / np.log(10))  # dB -> natural-log units of energy
    flags = (speech_env >= floor + margin) & (flatness < 0.5)
    # a talker's silence between words is still speech for our purpose (bridge 200 ms gaps),
    # isolated 1-frame blips are not
    flags = close_gaps(flags, seconds_to_frames_round(SPEECH_MAX_GAP_S))
    for s, e in runs(flags):
        if e - s < 3:
            flags[s:e] = False
    return flags


@dataclass
class SpeechActivity:
    """Where someone speaks, per frame on the 25 fps grid, and which detector decided.

    Attributes:
        frames: (T,) bool speech flags.
        gate: ``"vad"`` (the Silero VAD, :mod:`avdetect.vad`) or ``"energy"`` (the energy gate of
            :func:`speech_activity`, the fallback).
        probability: (T,) the VAD's speech probability per frame (None with the energy gate).
        note: why the energy gate was used (VAD not installed, failed), "" otherwise.
    """

    frames: np.ndarray
    gate: str
    probability: np.ndarray | None = None
    note: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    def to_track(self) -> Track:
        """The speech segments as a track: ``times_s`` = starts, ``end_s`` = ends (seconds),
        ``mean_probability`` per segment (VAD; NaN with the energy gate); the description names
        the gate (it starts with ``"gate: vad"`` or ``"gate: energy"``)."""
        seg = runs(self.frames)
        starts = frames_to_seconds(np.array([s for s, _ in seg], np.int64))
        ends = frames_to_seconds(np.array([e for _, e in seg], np.int64))
        mean_p = np.array([float(self.probability[s:e].mean()) if self.probability is not None else np.nan for s, e in seg])
        if self.gate == "vad":
            from avdetect.vad import vad_version

            what = f"gate: vad (Silero VAD, silero-vad {vad_version()}, ONNX)"
        else:
            what = "gate: energy (speech band >= noise floor + 12 dB, not noise-like)" + (f"; {self.note}" if self.note else "")
        return Track(starts, {"end_s": ends, "mean_probability": mean_p},
                     f"{what}: speech segments (start times_s, end_s) the audio and sync analyses used")


def vad_speech(probability: np.ndarray) -> SpeechActivity:
    """Speech activity from per-frame VAD probabilities (hysteresis :data:`VAD_SETTINGS`)."""
    from avdetect.vad import speech_frames_from_probability

    prob = np.asarray(probability, np.float32)
    return SpeechActivity(frames=speech_frames_from_probability(prob, **VAD_SETTINGS), gate="vad", probability=prob)


def energy_speech(af: AudioFrames, note: str = "") -> SpeechActivity:
    """The fallback: the energy gate the audio features carry (``af.speech``)."""
    return SpeechActivity(frames=np.asarray(af.speech, bool), gate="energy", note=note)


class VADSink:
    """Collects the VAD's per-frame probabilities from the samples :func:`audio_frame_features`
    hands its ``sink`` (and the seconds spent on them)."""

    def __init__(self):
        from avdetect.vad import SpeechProbabilityStream

        self._stream = SpeechProbabilityStream()
        self._parts: list[np.ndarray] = []
        self.seconds = 0.0

    def __call__(self, samples: np.ndarray) -> None:
        t = time.perf_counter()
        self._parts.append(self._stream.push(samples))
        self.seconds += time.perf_counter() - t

    def probability(self, n_frames: int) -> np.ndarray:
        t = time.perf_counter()
        self._parts.append(self._stream.finish())
        p = np.concatenate(self._parts)
        self.seconds += time.perf_counter() - t
        out = np.zeros(n_frames, np.float32)
        out[: min(n_frames, len(p))] = p[:n_frames]
        return out


def vad_probability(media, n_frames: int | None = None) -> np.ndarray:
    """(n_frames,) VAD speech probability of ``media``'s audio, decoded 60 s at a time (the grid
    of :func:`audio_frame_features`). Raises :class:`avdetect.vad.VADUnavailableError`."""
    total = _n_frames(media, n_frames)
    sink = VADSink()
    cached = getattr(media, "_audio", None)
    for f0 in range(0, total, CHUNK_FRAMES):
        n = min(CHUNK_FRAMES, total - f0)
        s0, s1 = frame_to_sample(f0), frame_to_sample(f0 + n)
        seg = cached[s0:s1] if cached is not None else media.read_audio(samples_to_seconds(s0), samples_to_seconds(s1))
        x = np.zeros(s1 - s0, np.float32)
        x[: len(seg)] = seg[: s1 - s0]
        sink(x)
    return sink.probability(total)


def with_speech(af: AudioFrames, speech: SpeechActivity | None) -> AudioFrames:
    """``af`` with its ``speech`` flags restricted to where ``speech`` (the VAD) says someone
    speaks: frames both gates call speech, i.e. sounding frames of speech; pauses inside speech
    (the VAD bridges them) carry the room's noise, not the voice, and music or noise that the
    energy gate calls active is not speech. Unchanged when ``speech`` is None or the energy gate."""
    if speech is None or speech.gate == "energy":
        return af
    if len(speech) != len(af):
        raise ValueError(f"speech activity covers {len(speech)} frames, the audio features {len(af)}")
    return replace(af, speech=np.asarray(af.speech, bool) & np.asarray(speech.frames, bool))


# ---------------------------------------------------------------------------------------
RELIABILITY = (
    "Audio splice cues compare recording conditions before and after a point; a change of "
    "room, microphone or background noise in genuine footage (a cut, music, a door) triggers them too, "
    "and a splice made from the same recording session may leave no trace."
)
WINDOW_S = 1.0
MAX_SPAN_S = 60.0  # two change points further apart than this are not paired into a span
THRESHOLD = 2.2  # change score (pooled-MAD units) at which a change point is reported
STRONG = 4.0


def _describe(names: list[str]) -> str:
    return ", ".join(names)


def analyze_audio_splices(af: AudioFrames, speech: SpeechActivity | None = None) -> tuple[list[Evidence], dict[str, Track]]:
    """Change points of recording conditions and the spans between them (see module doc).

    ``speech``: the shared speech activity (None: the energy gate ``af.speech``). With the VAD,
    the spectral features and the voice are compared over sounding speech frames (both gates
    agree, :func:`with_speech`), the noise floor over frames that neither gate calls active (no
    speech, no loud sound).
    """
    T = len(af)
    w = seconds_to_frames_round(WINDOW_S)
    # quiet (for the noise floor): frames that neither gate calls active (no speech, no loud sound)
    quiet = ~np.asarray(af.speech, bool)
    if speech is not None and speech.gate == "vad":
        quiet &= ~np.asarray(speech.frames, bool)
    af = with_speech(af, speech)
    ev, voice_tracks = voice_change_evidence(af.speech, af.mfcc, af.f0, af.voicing, af.speech_env)
    if T < 2 * w + 2:
        return ev, voice_tracks
    speech = af.speech
    # spectral features over speech frames: the talker's loudness is divided out by using the
    # band energies relative to the frame's total (the envelope's shape, not its level)
    shape = af.bands - af.log_energy[:, None]
    spec_feats = np.column_stack([shape, af.centroid / 1000.0, af.rolloff / 1000.0])
    spec_floor = np.r_[np.full(N_BANDS, 0.5), 0.15, 0.3]
    s_spec = change_scores(spec_feats, speech, w, floor=spec_floor)
    # noise floor and DC over non-speech frames
    noise_feats = np.column_stack([af.log_energy, shape[:, -4:], af.dc * 100.0])
    s_noise = change_scores(noise_feats, quiet, w, floor=np.r_[0.35, np.full(4, 0.4), 0.05])
    score = np.maximum(s_spec, s_noise)
    score = moving_average(score, 3)
    peaks = pick_peaks(score, THRESHOLD, min_distance=w)
    times = frames_to_seconds(np.arange(T))
    tracks = {"audio_change": Track(times, {"spectral_change": s_spec, "noise_change": s_noise, "speech": speech.astype(np.int8)},
                                    "per-frame change scores of recording conditions (1 s either side)")}
    tracks.update(voice_tracks)
    used: set[int] = set()
    # pair consecutive change points into an inserted span when outside-left ~ outside-right
    for a, b in zip(peaks, peaks[1:]):
        if a in used or b - a > seconds_to_frames_round(MAX_SPAN_S):
            continue
        inside = slice(a, b)
        left, right = slice(max(0, a - 2 * w), a), slice(b, min(T, b + 2 * w))
        m_in, m_l, m_r = (np.nanmedian(np.where(speech[s, None], spec_feats[s], np.nan), 0) if speech[s].sum() >= 3 else None
                          for s in (inside, left, right))
        if m_in is None or m_l is None or m_r is None:
            continue
        d_lr = float(np.sqrt(np.mean(((m_l - m_r) / spec_floor) ** 2)))
        d_in = float(np.sqrt(np.mean(((m_in - 0.5 * (m_l + m_r)) / spec_floor) ** 2)))
        if d_in > 1.5 * d_lr:
            used.update((a, b))
            sc = float(min(score[a], score[b]))
            ev.append(Evidence(
                kind="audio_splice", start_s=times[a], end_s=frames_to_seconds(b),
                value={"change_score_start": float(score[a]), "change_score_end": float(score[b]),
                       "inside_vs_outside": d_in, "left_vs_right": d_lr},
                explanation=(f"the sound between {times[a]:.2f} s and {frames_to_seconds(b):.2f} s differs in spectrum or "
                             f"background from the audio on both sides, which agree with each other: a possible inserted or replaced span"),
                strength=squash(sc, THRESHOLD + 0.8, STRONG + 1.0), reliability=RELIABILITY,
            ))
    for p in peaks:
        if p in used:
            continue
        which = [n for n, s in (("spectral envelope/bandwidth", s_spec[p]), ("noise floor/DC", s_noise[p])) if s >= THRESHOLD * 0.8]
        ev.append(Evidence(
            kind="audio_splice", start_s=max(0.0, frames_to_seconds(p) - 0.2), end_s=min(frames_to_seconds(T), frames_to_seconds(p) + 0.2),
            value={"change_score": float(score[p]), "spectral_change": float(s_spec[p]), "noise_change": float(s_noise[p])},
            explanation=(f"the recording conditions change at {frames_to_seconds(p):.2f} s ({_describe(which) or 'several features'}): "
                         f"a possible splice point, or a natural change of scene"),
            strength=squash(float(score[p]), STRONG, STRONG + 2.0), reliability=RELIABILITY,
        ))
    # clicks: a sample-level discontinuity far above the frame's level inside continuous sound
    click_thr = max(8.0, float(np.percentile(af.clicks, 99.5)) * 1.5) if T > 50 else 8.0
    loud = af.log_energy > np.percentile(af.log_energy, 30)
    for f in np.flatnonzero((af.clicks > click_thr) & loud)[:20]:
        ev.append(Evidence(
            kind="audio_splice", start_s=frames_to_seconds(f), end_s=frames_to_seconds(f + 1),
            value={"click_ratio": float(af.clicks[f])},
            explanation=f"a sudden jump in the waveform at {frames_to_seconds(f):.2f} s, as left by cutting audio without a crossfade",
            strength=squash(float(af.clicks[f]) / click_thr, 1.5, 3.0),
            reliability="clicks also come from microphone handling, clipping and some codecs",
        ))
    return ev, tracks


def bandwidth_fact(af: AudioFrames, source_rate: int) -> Evidence | None:
    """Effective audio bandwidth of speech vs the stream's sample rate (upsampled audio)."""
    if frames_to_seconds(int(af.speech.sum())) < 1.0:  # under a second of speech
        return None
    bw = float(np.percentile(af.rolloff[af.speech], 90))
    nyq = min(source_rate or SAMPLE_RATE, SAMPLE_RATE) / 2
    narrow = bw < 0.55 * nyq
    return Evidence(
        kind="audio_bandwidth", start_s=None, end_s=None, value={"bandwidth_hz": bw, "analysed_nyquist_hz": nyq},
        explanation=(f"speech energy reaches about {bw / 1000:.1f} kHz of the {nyq / 1000:.1f} kHz available"
                     + (": the audio was probably recorded or processed at a lower sample rate (phone line, TTS, re-encoding)" if narrow
                        else ", as expected for a direct recording")),
        strength=0.35 if narrow else 0.0,
        reliability="narrow bandwidth is common in genuine phone, radio and heavily compressed recordings",
    )


def _run(inputs: Inputs) -> tuple[list[Evidence], dict[str, Track]]:
    ev, tracks = analyze_audio_splices(inputs.audio, inputs.speech)
    bw = bandwidth_fact(with_speech(inputs.audio, inputs.speech), inputs.media.info.source_sample_rate)
    return ev + ([bw] if bw is not None else []), tracks


AUDIO = Analysis(
    name="audio", kinds=("audio_splice", "audio_bandwidth"),
    labels={"audio_splice": "audio splice", "audio_bandwidth": "audio bandwidth"}, needs=("audio", "speech"), run=_run,
    series={"audio_splice": LaneSeries("audio_change", ("spectral_change", "noise_change"), 8.0, "max", note="change scores")},
)
