"""The speaker/voice change cue of the audio splice analysis: generated voices (fast, always run)
and real clips looped and with a span of speech replaced by another clip's (skipped without
../shared/samples)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

from avdetect.forensics import analyze
from avdetect.forensics.audio import analyze_audio_splices, audio_frame_features
from avdetect.forensics.voice import clean_pitch, voice_frame_features
from avdetect.media import load_media
from conftest import run_ffmpeg, sample_clips
from test_forensics import _loop, iou, make_case

SR = 16000
# (F1, F2, F3) of a few vowels for an adult male vocal tract
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410), (660, 1720, 2410)]


def _voice(seconds: float, rng, f0: float, formant_scale: float = 1.0, syllables_per_s: float = 4.0) -> np.ndarray:
    """A talker-like signal: glottal pulses whose pitch falls over each 2 s phrase and jitters per
    syllable, through three formant resonators that jump between vowels at syllable rate, with
    pauses between phrases. ``formant_scale`` > 1 is a shorter vocal tract."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    syl = (t * syllables_per_s).astype(int)
    pitch = f0 * (1.15 - 0.3 * (t % 2.0) / 2.0) * np.exp(rng.normal(0, 0.06, syl[-1] + 1)[syl])
    pulses = np.diff(np.floor(np.cumsum(pitch / SR)), prepend=0.0)
    src = lfilter([1.0], [1.0, -0.97], pulses)
    out = np.zeros(n)
    for k, v in enumerate(rng.integers(0, len(VOWELS), syl[-1] + 1)):
        a, b = int(k * SR / syllables_per_s), min(n, int((k + 1) * SR / syllables_per_s))
        y = src[a:b]
        for f, bw in zip(np.array(VOWELS[v]) * formant_scale, (80, 100, 120)):
            r = np.exp(-np.pi * bw / SR)
            y = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], y)
        out[a:b] = y * np.sin(np.linspace(0, np.pi, b - a)) ** 0.5
    out *= np.sin(2 * np.pi * 0.37 * t + rng.uniform(0, 6)) > -0.7
    return (0.3 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def _voice_spans(evidence):
    return [e for e in evidence if isinstance(e.value, dict) and "voice_score" in e.value]


def _write(tmp_path, name, x, rng) -> str:
    path = tmp_path / name
    sf.write(path, x + 0.002 * rng.standard_normal(len(x)).astype(np.float32), SR)
    return str(path)


# ---------------------------------------------------------------------------------------
def test_pitch_and_mfcc_of_generated_voices():
    """F0 within a few % of the glottal rate; a shorter vocal tract moves the MFCCs."""
    rng = np.random.default_rng(3)
    for f0 in (110.0, 220.0):
        x = _voice(4, rng, f0)
        n = len(x) // 640 - 2
        idx = np.arange(n)[:, None] * 640 + np.arange(1024)[None, :]
        spec = np.abs(np.fft.rfft((x[idx] - x[idx].mean(1, keepdims=True)) * np.hanning(1024), axis=1)) ** 2
        vf = voice_frame_features(spec, 1024)
        voiced = vf["f0"] > 0
        assert voiced.mean() > 0.4
        # the pitch glides from 1.15 x f0 down to 0.85 x f0 over each phrase
        assert 0.8 * f0 < np.median(vf["f0"][voiced]) < 1.2 * f0, np.median(vf["f0"][voiced])
        assert vf["mfcc"].shape == (n, 12) and np.isfinite(vf["mfcc"]).all()


def test_speech_features_are_the_full_features_speech_fields():
    """The domain checks measure speech with speech_features (the speech envelope and the
    flatness alone, no pitch or cepstra): the same values, bit for bit, as those fields of the
    full per-frame features the evidence computes, on speech-like and silent audio."""
    from avdetect.forensics.audio import NFFT, _chunk_features, speech_features

    rng = np.random.default_rng(0)
    t = np.arange(40 * 640 + NFFT) / 16000.0
    voiced = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t)))
    for x in (voiced.astype(np.float32), np.zeros(len(t), np.float32)):
        full = _chunk_features(x, 40)
        env, flat = speech_features(x, 40)
        assert np.array_equal(env, full["speech_env"]) and np.array_equal(flat, full["flatness"])


def test_clean_pitch_drops_quiet_and_octave_frames():
    T = 100
    f0 = np.full(T, 120.0, np.float32)
    f0[50] = 240.0  # an octave jump inside voiced speech
    f0[10] = 340.0  # a periodic hum 40 dB below the speech
    level = np.full(T, 8.0)
    level[10] = 8.0 - 40 / 4.343
    st = clean_pitch(f0, np.full(T, 0.9, np.float32), np.ones(T, bool), level)
    assert np.isnan(st[50]) and np.isnan(st[10])
    assert np.allclose(st[np.isfinite(st)], 12 * np.log2(1.2))


def test_generated_voice_replacement_found(tmp_path):
    """20 s of one voice with [8, 11) s replaced by another voice (higher pitch, shorter vocal
    tract), same noise floor: a voice span over [8, 11) with strength >= 0.5."""
    rng = np.random.default_rng(0)
    x = _voice(20, rng, 120.0)
    x[8 * SR : 11 * SR] = _voice(3, rng, 210.0, 1.18)
    af = audio_frame_features(load_media(_write(tmp_path, "replaced.wav", x, rng)))
    ev, tracks = analyze_audio_splices(af)
    spans = [e for e in _voice_spans(ev) if e.strength >= 0.5]
    assert max([iou((8.0, 11.0), (e.start_s, e.end_s)) for e in spans], default=0.0) >= 0.5, [e.to_dict() for e in _voice_spans(ev)]
    best = max(spans, key=lambda e: e.strength)
    assert best.value["pitch_hz_inside"] > 1.4 * best.value["pitch_hz_before"]
    assert "changes back" in best.explanation and "Hz" in best.explanation and "several speakers" in best.reliability
    assert "voice_change" in tracks and len(tracks["voice_change"].times_s) == len(af)
    json.dumps([e.to_dict() for e in ev])


def test_generated_single_voice_not_flagged(tmp_path):
    rng = np.random.default_rng(1)
    af = audio_frame_features(load_media(_write(tmp_path, "one.wav", _voice(20, rng, 120.0), rng)))
    ev, _ = analyze_audio_splices(af)
    assert all(e.strength < 0.5 for e in ev if isinstance(e.value, dict) and ("voice_score" in e.value or "voice_change" in e.value)), \
        [e.to_dict() for e in ev]


def test_short_or_silent_audio_gives_no_voice_items(tmp_path):
    rng = np.random.default_rng(2)
    for name, x in (("short.wav", _voice(1.5, rng, 120.0)), ("silent.wav", np.zeros(10 * SR, np.float32))):
        ev, _ = analyze_audio_splices(audio_frame_features(load_media(_write(tmp_path, name, x, rng))))
        assert not _voice_spans(ev)


# ---------------------------------------------------------------------------------------
# real clips (24 s loops): the replace case of tests/test_forensics.py, audio only
AOC = "sadtalker_WDA_AlexandriaOcasioCortez_000"
GRID = "lipnet_GRID_bbaf2n"


@pytest.fixture(scope="module")
def loops(tmp_path_factory):
    clips = {c.stem: c for c in sample_clips()}
    if AOC not in clips or GRID not in clips:
        pytest.skip("real sample clips not found")
    base = tmp_path_factory.mktemp("voice_loops")
    out = {}
    for stem in (AOC, GRID):
        out[stem] = base / f"{stem}.mp4"
        _loop(clips[stem], out[stem])
    return out


def test_real_replacement_found(loops, tmp_path):
    """AOC's voice with [9, 12) s replaced by a GRID talker's speech (as make_case does it)."""
    path, span, _ = make_case(loops[AOC], loops[GRID], tmp_path, "replace")
    res = analyze(load_media(path), kinds=["audio"])
    spans = [e for e in _voice_spans(res.evidence) if e.strength >= 0.5]
    assert max([iou(span, (e.start_s, e.end_s)) for e in spans], default=0.0) >= 0.5, [e.to_dict() for e in res.of_kind("audio_splice")]


def test_real_untouched_loop_not_flagged(loops):
    res = analyze(load_media(loops[AOC]), kinds=["audio"])
    strong = [e.to_dict() for e in res.of_kind("audio_splice") if e.strength >= 0.5]
    assert not strong, strong


@pytest.mark.slow
def test_real_replacement_other_spans_and_pairs(loops, tmp_path):
    """Replacement at [5, 8) and [14, 17) instead of [9, 12), GRID speech into AOC's: found too."""
    for a, b in ((5, 8), (14, 17)):
        dst = tmp_path / f"r{a}.mp4"
        fc = (f"[0:a]atrim=0:{a},asetpts=N/SR/TB[a0];[1:a]atrim=1:4,asetpts=N/SR/TB,aresample=16000,"
              f"aformat=channel_layouts=mono[a1];[0:a]atrim={b},asetpts=N/SR/TB[a2];[a0][a1][a2]concat=n=3:v=0:a=1[a]")
        run_ffmpeg("-i", str(loops[AOC]), "-i", str(loops[GRID]), "-filter_complex", fc, "-map", "0:v", "-map", "[a]",
                   "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", "-t", "24", str(dst))
        res = analyze(load_media(dst), kinds=["audio"])
        spans = [e for e in _voice_spans(res.evidence) if e.strength >= 0.5]
        assert max([iou((a, b), (e.start_s, e.end_s)) for e in spans], default=0.0) >= 0.5, (a, [e.to_dict() for e in spans])


def test_mel_bank_matches_librosa():
    """Our HTK mel bank is librosa's ``htk=True, norm=None`` bank. That bank is asked for with
    ``norm="slaney"`` and the Slaney area normalisation divided out again: ``norm=None`` makes
    librosa import ``librosa.util``, whose numba kernels compile for ~25 s on a cold cache."""
    librosa = pytest.importorskip("librosa")
    from avdetect.forensics.voice import MEL_RANGE, N_MEL, _mel_matrix

    ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=N_MEL, fmin=MEL_RANGE[0], fmax=MEL_RANGE[1], htk=True, norm="slaney")
    edges = librosa.mel_frequencies(N_MEL + 2, fmin=MEL_RANGE[0], fmax=MEL_RANGE[1], htk=True)
    ref = ref * ((edges[2:] - edges[:-2]) / 2.0)[:, None]  # (N_MEL, 513): peak 1, as with norm=None
    assert 0.8 < ref.max(axis=1).min() and ref.max() <= 1.0 + 1e-9  # triangles of height 1 again (Slaney's are ~0.01)
    assert np.allclose(_mel_matrix(1024), ref, atol=1e-6)


def test_generated_speaker_turn_is_a_weak_change_point(tmp_path):
    """One voice, then another for good: a single change point near 10 s, never above 0.4 (a
    speaker turn is normal), and no span."""
    rng = np.random.default_rng(4)
    x = np.concatenate([_voice(10, rng, 120.0), _voice(10, rng, 210.0, 1.18)])
    ev, _ = analyze_audio_splices(audio_frame_features(load_media(_write(tmp_path, "turn.wav", x, rng))))
    changes = [e for e in ev if isinstance(e.value, dict) and "voice_change" in e.value]
    near = [e for e in changes if abs(0.5 * (e.start_s + e.end_s) - 10.0) <= 0.6]
    assert near and all(0.0 < e.strength <= 0.4 for e in changes), [e.to_dict() for e in changes]
    assert "stays changed" in near[0].explanation
    assert not [e for e in _voice_spans(ev) if e.strength >= 0.5]


def test_vad_speech_restricts_the_splice_features(tmp_path):
    """With the VAD's speech: spectral/voice features over frames both gates call speech, the
    noise floor only over frames neither calls active (here: none, so no noise change)."""
    from avdetect.forensics.audio import SpeechActivity, energy_speech, with_speech

    rng = np.random.default_rng(5)
    af = audio_frame_features(load_media(_write(tmp_path, "v.wav", _voice(12, rng, 130.0), rng)))
    everywhere = SpeechActivity(frames=np.ones(len(af), bool), gate="vad", probability=np.ones(len(af), np.float32))
    _, tracks = analyze_audio_splices(af, everywhere)
    assert not tracks["audio_change"].values["noise_change"].any()
    np.testing.assert_array_equal(tracks["audio_change"].values["speech"].astype(bool), af.speech)  # speech & energy
    nowhere = SpeechActivity(frames=np.zeros(len(af), bool), gate="vad", probability=np.zeros(len(af), np.float32))
    assert not with_speech(af, nowhere).speech.any()
    assert with_speech(af, energy_speech(af)) is af and with_speech(af, None) is af
    _, base = analyze_audio_splices(af)
    _, same = analyze_audio_splices(af, energy_speech(af))
    np.testing.assert_array_equal(base["audio_change"].values["noise_change"], same["audio_change"].values["noise_change"])


def test_audio_step_started_in_a_thread_gives_the_same_evidence(tmp_path, monkeypatch):
    """analyze(audio_prefetch=AudioPrefetch(media)) (the face worker starts the audio step before
    tracking faces) gives the same evidence and tracks as analyze computing it when needed, and
    an error of the audio step is raised by analyze as it would have been."""
    import importlib

    from avdetect.errors import MediaError
    from avdetect.forensics.analyze import AudioPrefetch

    analyze_mod = importlib.import_module("avdetect.forensics.analyze")  # (the package's analyze is the function)

    rng = np.random.default_rng(0)
    x = _voice(12, rng, 120.0)
    x[5 * SR : 8 * SR] = _voice(3, rng, 210.0, 1.18)
    path = _write(tmp_path, "v.wav", x, rng)
    base = analyze(load_media(path))
    media = load_media(path)
    got = analyze(media, audio_prefetch=AudioPrefetch(media))
    assert got.evidence_dicts() == base.evidence_dicts() and got.ran == base.ran and got.skipped == base.skipped
    assert set(got.tracks) == set(base.tracks) and "speech" in got.tracks
    for name, track in base.tracks.items():
        for key, values in track.values.items():
            np.testing.assert_array_equal(got.tracks[name].values[key], values, err_msg=f"{name}.{key}")
    assert set(got.seconds) == set(base.seconds)

    def broken(media, sink=None):
        raise MediaError("audio stream unreadable", media.path)

    monkeypatch.setattr(analyze_mod, "audio_frame_features", broken)
    media = load_media(path)
    pre = AudioPrefetch(media)
    pre._thread.join()
    monkeypatch.undo()  # analyze itself could now read the audio: the error must be the prefetch's
    with pytest.raises(MediaError, match="audio stream unreadable"):
        analyze(media, audio_prefetch=pre)


def test_an_audio_only_detect_starts_the_evidence_audio_step_with_the_sources(tmp_path, monkeypatch):
    """With no face worker to run the evidence stage (an audio-only file), detect starts the
    stage's audio step (features, VAD) when its sources open, so that it runs beside the model,
    and the analysis takes it instead of decoding again: the same evidence as without it. With a
    face worker there is none here (the worker starts its own)."""
    import avdetect.forensics
    from avdetect.api import Detector
    from avdetect.forensics.analyze import AudioPrefetch
    from avdetect.sources import Sources
    from conftest import run_ffmpeg, tiny_checkpoint

    rng = np.random.default_rng(3)
    path = _write(tmp_path, "v.wav", _voice(6, rng, 120.0), rng)
    given = []
    real = avdetect.forensics.analyze
    monkeypatch.setattr(avdetect.forensics, "analyze", lambda *a, **k: given.append(k.get("audio_prefetch")) or real(*a, **k))
    report = Detector.from_pretrained(tiny_checkpoint(tmp_path / "ck"), device="cpu").detect(path)
    assert len(given) == 1 and isinstance(given[0], AudioPrefetch)
    assert report.evidence == real(load_media(path)).evidence_dicts()
    media = load_media(path)
    assert Sources(media, keep_face=False, face_features=False).evidence_audio is None  # no forensics asked
    clip = tmp_path / "av.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1", "-i", path, "-t", "1", "-c:v", "libx264",
               "-c:a", "aac", "-shortest", str(clip))
    with Sources(load_media(clip), keep_face=False, face_features=True) as src:
        assert src.evidence_audio is None  # the face worker runs the stage, its audio step included
