"""Speech activity (avdetect.vad): the Silero VAD's ONNX file run on onnxruntime, on the 25 Hz grid,
and its use by the forensic analyses (VAD where installed, the energy gate otherwise)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import soundfile as sf

from avdetect import vad
from avdetect.errors import AVDetectError
from avdetect.forensics import Analysis, analyze, register_analysis, unregister_analysis
from avdetect.media import load_media
from avdetect.synth.speech import plan_utterance, sample_voice, synthesize
from avdetect.timegrid import SAMPLES_PER_FRAME, frame_to_sample, n_samples_for_duration, seconds_to_frame
from conftest import sample_clips

SR = 16000
needs_vad = pytest.mark.skipif(not vad.vad_available(), reason="silero-vad / onnxruntime not installed")


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Formant speech from the synthetic generator (continuous talking, peak 0.5)."""
    rng = np.random.default_rng(seed)
    voice = sample_voice(rng, f"v{seed}")
    x, _ = synthesize(plan_utterance(rng, voice, seconds, lead=0.0, tail=0.0), voice, rng)
    return x


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(n_samples_for_duration(seconds)) / SR  # not time: sample index -> seconds for a sine
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _music(seconds: float) -> np.ndarray:
    """A held chord with vibrato: loud, harmonic, not flat, in the speech band, and not speech."""
    t = np.arange(n_samples_for_duration(seconds)) / SR  # not time: sample index -> seconds for a sine
    x = sum(np.sin(2 * np.pi * f * t + 0.3 * np.sin(2 * np.pi * 5 * t)) / (k + 1) for k, f in enumerate((220.0, 277.2, 329.6, 440.0, 880.0)))
    return (0.1 * x).astype(np.float32)


# --- the model on the grid ---------------------------------------------------------------
@needs_vad
def test_speech_silence_noise_and_tone():
    rng = np.random.default_rng(1)
    speech = vad.speech_frames(_speech(6.0))
    assert speech.mean() > 0.7, speech.mean()
    for name, x in (("silence", np.zeros(n_samples_for_duration(4.0), np.float32)),
                    ("white noise", (0.1 * rng.standard_normal(n_samples_for_duration(4.0))).astype(np.float32)),
                    ("tone", _tone(4.0)), ("chord", _music(4.0))):
        p = vad.speech_probability(x)
        assert p.max() < 0.5 and not vad.speech_frames(x).any(), (name, float(p.max()))


@needs_vad
def test_speech_in_noise_is_still_found():
    rng = np.random.default_rng(2)
    x = _speech(6.0, seed=3)
    x = x + (0.02 * rng.standard_normal(len(x))).astype(np.float32)  # about 20 dB SNR
    assert vad.speech_frames(x).mean() > 0.6


@needs_vad
def test_frame_count_and_alignment_on_the_grid():
    assert np.allclose(vad._WEIGHTS.sum(1), 1.0) and vad.BLOCK == frame_to_sample(vad.BLOCK_FRAMES)
    for n in (0, 100, 511, 640, 641, 2559, 2560, 2561, 16000 + 17):
        assert len(vad.speech_probability(np.zeros(n, np.float32))) == -(-n // SAMPLES_PER_FRAME), n
    # speech over [2.0, 4.0) s inside silence: the flags start and stop within a few frames of it
    x = np.zeros(n_samples_for_duration(6.0), np.float32)
    s0, s1 = n_samples_for_duration(2.0), n_samples_for_duration(4.0)
    x[s0:s1] = _speech(2.0, seed=4)
    flags = vad.speech_frames(x)
    on = np.flatnonzero(flags)
    assert len(flags) == seconds_to_frame(6.0)
    assert abs(on[0] - seconds_to_frame(2.0)) <= 3 and abs(on[-1] + 1 - seconds_to_frame(4.0)) <= 4, (on[0], on[-1])
    # 160 ms of silence in front (one block: the model's 512-sample chunks fall on the same
    # samples) shifts the speech flags by exactly four frames
    shifted = vad.speech_frames(np.concatenate([np.zeros(frame_to_sample(vad.BLOCK_FRAMES), np.float32), x]))
    np.testing.assert_array_equal(shifted[vad.BLOCK_FRAMES:], flags)
    assert not shifted[: vad.BLOCK_FRAMES].any()


@needs_vad
def test_streaming_equals_one_pass_and_stays_small():
    rng = np.random.default_rng(5)
    x = np.concatenate([_speech(8.0, seed=6), np.zeros(n_samples_for_duration(1.3), np.float32), _speech(5.0, seed=7)])
    x = x[: len(x) - 123]  # a partial last frame
    one = vad.speech_probability(x, piece=len(x) + 1)
    stream = vad.SpeechProbabilityStream()
    parts, a = [], 0
    while a < len(x):
        n = int(rng.integers(1, 9000))
        parts.append(stream.push(x[a : a + n]))
        assert len(stream._pending) < vad.BLOCK  # memory: under one block carried between pieces
        a += n
    parts.append(stream.finish())
    np.testing.assert_array_equal(np.concatenate(parts), one)
    np.testing.assert_array_equal(vad.speech_probability(x), one)  # the default piece size
    assert len(one) == -(-len(x) // SAMPLES_PER_FRAME)
    with pytest.raises(RuntimeError):
        stream.push(x[:10])


def test_hysteresis_on_probabilities():
    p = np.zeros(100)
    p[10:30] = 0.9  # 20 frames of speech
    p[30:32] = 0.2  # a 2-frame pause (80 ms < 100 ms): bridged
    p[32:40] = 0.9
    p[40:45] = 0.4  # between the thresholds: still speech until it drops below 0.35
    p[60:63] = 0.9  # 3 frames (120 ms) < 250 ms: dropped
    p[80:90] = 0.9
    p[90:93] = 0.1  # 3 frames of silence >= 100 ms: ends
    p[93:98] = 0.9  # 5 frames: too short alone
    f = vad.speech_frames_from_probability(p)
    on = [(int(s), int(e)) for s, e in zip(np.flatnonzero(np.diff(np.r_[0, f.astype(int)]) == 1),
                                          np.flatnonzero(np.diff(np.r_[f.astype(int), 0]) == -1) + 1)]
    assert on == [(9, 46), (79, 91)], on  # padded by one frame (30 ms) each side


@needs_vad
def test_real_clip_speech_agrees_with_loudness():
    clips = sample_clips()
    if not clips:
        pytest.skip("real sample clips not found")
    for path in clips[:2]:
        m = load_media(path)
        p = vad.speech_probability(m.audio)
        flags = vad.speech_frames_from_probability(p)
        assert len(p) == -(-m.n_samples // SAMPLES_PER_FRAME)
        assert 0.2 < flags.mean() < 0.98, (path.name, flags.mean())
        frames = m.audio[: frame_to_sample(len(p) - 1)].reshape(-1, SAMPLES_PER_FRAME)
        level = 10 * np.log10((frames.astype(np.float64) ** 2).mean(1) + 1e-12)
        f = flags[: len(level)]
        assert np.median(level[f]) > np.median(level[~f]) + 10, path.name  # speech is louder than the rest


# --- missing package -> typed error --------------------------------------------------------
def test_missing_package_is_a_typed_error(monkeypatch):
    real = importlib.util.find_spec

    def no_silero(name, *args, **kwargs):
        return None if name == "silero_vad" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_silero)
    monkeypatch.setattr(vad, "_SESSION", None)
    assert not vad.vad_available()
    with pytest.raises(vad.VADUnavailableError, match="silero-vad") as err:
        vad.speech_probability(np.zeros(SR, np.float32))
    assert isinstance(err.value, AVDetectError) and "pip install" in str(err.value)


def test_missing_onnxruntime_is_a_typed_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "onnxruntime" else real(name, *a, **k))
    monkeypatch.setattr(vad, "_SESSION", None)
    assert not vad.vad_available()
    with pytest.raises(vad.VADUnavailableError, match="onnxruntime"):
        vad.SpeechProbabilityStream()


def test_package_without_model_file(monkeypatch, tmp_path):
    (tmp_path / "silero_vad").mkdir()
    spec = importlib.util.spec_from_file_location("silero_vad", tmp_path / "silero_vad" / "__init__.py",
                                                  submodule_search_locations=[str(tmp_path / "silero_vad")])
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: spec if name == "silero_vad" else real(name, *a, **k))
    assert not vad.vad_available()
    with pytest.raises(vad.VADUnavailableError, match="silero_vad.onnx"):
        vad.model_path()


# --- the analyses: VAD when available, the energy gate otherwise ---------------------------
def _speech_and_music(tmp_path) -> str:
    """9 s: speech [0, 3), silence, a loud chord [4, 6.5) (energy says active, the VAD says no
    speech), silence, speech [7, 9)."""
    rng = np.random.default_rng(8)
    gap = np.zeros(n_samples_for_duration(1.0), np.float32)
    x = np.concatenate([_speech(3.0, seed=9), gap, _music(2.5), gap[: len(gap) // 2], _speech(2.0, seed=10)])
    x = x + (0.002 * rng.standard_normal(len(x))).astype(np.float32)
    path = tmp_path / "speech_music.wav"
    sf.write(path, x, SR)
    return str(path)


def _probe(seen: list):
    def run(inputs):
        seen.append(inputs.speech)
        return [], {}
    return run


@pytest.fixture
def probes():
    seen: list = []
    names = []
    for k in range(2):
        a = Analysis(f"speech_probe{k}", kinds=(f"speech_probe{k}",), labels={f"speech_probe{k}": "probe"},
                     needs=("speech",), run=_probe(seen))
        register_analysis(a)
        names.append(a.name)
    yield seen, names
    for n in names:
        unregister_analysis(n)


@needs_vad
def test_analyses_use_the_vad_when_available(tmp_path, probes):
    seen, names = probes
    path = _speech_and_music(tmp_path)
    res = analyze(load_media(path), kinds=["audio", *names])
    sp = res.tracks["speech"]
    assert sp.description.startswith("gate: vad"), sp.description
    assert "speech_activity" in res.seconds and res.seconds["speech_activity"] >= 0
    # one speech activity per file, shared by every analysis that needs it
    assert len(seen) == 2 and seen[0] is seen[1] and seen[0].gate == "vad"
    flags = seen[0].frames
    chord = slice(seconds_to_frame(3.6), seconds_to_frame(6.9))  # the VAD lets go within 0.6 s (0.2 s bridged)
    assert not flags[chord].any() and flags[: seconds_to_frame(3.0)].mean() > 0.6
    # the splice analysis measured its spectral features over sounding speech: frames the VAD
    # and the energy gate both call speech (not the chord, which the energy gate calls active)
    from avdetect.forensics.audio import audio_frame_features

    energy = audio_frame_features(load_media(path)).speech
    assert energy[chord].mean() > 0.5
    np.testing.assert_array_equal(res.tracks["audio_change"].values["speech"].astype(bool), flags & energy)
    # the segments of the track are where the flags are
    assert all(e <= 3.6 or s >= 6.9 for s, e in zip(sp.times_s, sp.values["end_s"]))


def test_analyses_fall_back_to_the_energy_gate(tmp_path, monkeypatch, probes):
    seen, names = probes
    monkeypatch.setattr(vad, "vad_available", lambda: False)
    path = _speech_and_music(tmp_path)
    res = analyze(load_media(path), kinds=["audio", *names])
    assert res.tracks["speech"].description.startswith("gate: energy"), res.tracks["speech"].description
    assert "not installed" in res.tracks["speech"].description
    assert "speech_activity" not in res.seconds
    assert len(seen) == 2 and seen[0] is seen[1] and seen[0].gate == "energy" and seen[0].probability is None
    # the energy gate cannot tell the chord from speech
    assert seen[0].frames[seconds_to_frame(4.2) : seconds_to_frame(6.3)].mean() > 0.8


def test_audio_features_computed_first_still_get_the_vad(tmp_path, monkeypatch):
    """An analysis needing only audio runs first: the VAD then decodes the audio itself."""
    if not vad.vad_available():
        pytest.skip("silero-vad / onnxruntime not installed")
    seen: list = []
    early = Analysis("audio_only_probe", kinds=("audio_only_probe",), labels={"audio_only_probe": "probe"},
                     needs=("audio",), run=lambda inputs: ([], {}))
    late = Analysis("late_speech_probe", kinds=("late_speech_probe",), labels={"late_speech_probe": "probe"},
                    needs=("speech",), run=_probe(seen))
    from avdetect.forensics import registry

    saved = dict(registry._REGISTRY)
    try:
        registry._REGISTRY.clear()
        register_analysis(early)
        register_analysis(late)
        path = _speech_and_music(tmp_path)
        res = analyze(load_media(path))
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)
    assert seen[0].gate == "vad" and "speech_activity" in res.seconds
    assert len(seen[0]) == len(vad.speech_probability(load_media(path).audio))


def test_audio_without_audio_stream_skips_speech(tmp_path, probes):
    seen, names = probes
    from conftest import run_ffmpeg

    path = tmp_path / "silent.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:d=1:r=25", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    res = analyze(load_media(path), kinds=names)
    assert res.skipped[names[0]] == "the file has no audio stream" and not seen and "speech" not in res.tracks


def test_sync_counts_frames_near_speech():
    from avdetect.forensics.sync import speech_context

    f = np.zeros(100, bool)
    f[40:50] = True
    wide = speech_context(f, 0.2)  # 5 frames each side
    assert np.flatnonzero(wide)[[0, -1]].tolist() == [35, 54]
    assert not speech_context(np.zeros(10, bool), 0.5).any()
    np.testing.assert_array_equal(speech_context(f, 0.0), f)


def _syllables(T: int, seed: int) -> np.ndarray:
    """A syllable-rate (about 4 Hz) opening in [0, 1], smooth over frames."""
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.random(T + 12), np.hanning(7), mode="same")[6:T + 6]
    return (x - x.min()) / (x.max() - x.min())


def test_sync_reads_the_lip_aperture_where_landmarks_were_measured():
    from avdetect.forensics.sync import lip_aperture_features, sync_track

    T, lag = 600, 3  # 24 s; the sound 3 frames (120 ms) after the mouth, as lips lead speech
    opening = _syllables(T + lag, 0)
    speech_env = np.log(opening[:T] + 0.01)  # the sound follows the opening ...
    aperture = 0.3 * opening[lag:T + lag]  # ... which the lips showed 3 frames before
    mouth = np.random.default_rng(1).integers(0, 255, (T, 22, 24), dtype=np.uint8)  # pixels that carry nothing
    valid, speech = np.ones(T, bool), np.ones(T, bool)
    shape = np.stack([aperture, np.full(T, 0.8), np.full(T, 0.3)], 1).astype(np.float32)
    pixels, _ = sync_track(mouth, valid, speech_env, speech)
    lips, _ = sync_track(mouth, valid, speech_env, speech, shape=shape)
    assert lips.clip_offset_s == pytest.approx(lag * 0.04, abs=1e-9)  # + = audio late
    assert lips.clip_confidence > 0.3 and pixels.clip_confidence < 0.2
    # where landmarks are missing (the Haar backend), the features are the pixels' alone
    assert lip_aperture_features(np.full((T, 3), np.nan, np.float32), valid) is None
    none, _ = sync_track(mouth, valid, speech_env, speech, shape=np.full((T, 3), np.nan, np.float32))
    np.testing.assert_array_equal(none.corr_at_clip_offset, pixels.corr_at_clip_offset)
