"""The one inference engine (avdetect.inference): windows, stitching, the clip score, and the
equality that matters: what evaluation and calibration score is what detect reports."""
from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from avdetect.inference import (STREAM_SCORE_FRAMES, InferenceResult, WindowEngine, WindowInputs, clip_score,
                                run_windows, stream_score, window_starts)
from avdetect.localization import ScoreTrack
from avdetect.timegrid import SAMPLES_PER_FRAME


def test_window_starts_cover_every_frame():
    for n in (1, 50, 100, 101, 149, 150, 1000, 1234):
        for window, hop in ((100, 50), (100, 30), (100, 75), (100, 100)):
            starts = window_starts(n, window, hop)
            covered = np.zeros(n, bool)
            for s in starts:
                covered[s:s + window] = True
            assert covered.all() and starts == sorted(set(starts)) and starts[-1] + window >= n
            assert starts[-1] == max(0, n - window)  # the last window is flush with the end


def test_engine_batches_windows_with_at_most_one_copy():
    """The engine's inputs: a single full-length window is handed to torch as a view (no copy of
    its megabytes of crops); short windows are zero-padded, batches stacked, a read-only array
    (a memory-mapped cache) copied, and dtypes converted."""
    stack = WindowEngine._stack
    full = np.arange(4 * 3, dtype=np.uint8).reshape(4, 3)
    out = stack([full], 4)
    assert out.shape == (1, 4, 3) and np.shares_memory(out, full)
    short = full[:2].copy()
    out = stack([short, full], 4)
    assert out.shape == (2, 4, 3) and not np.shares_memory(out, full)
    np.testing.assert_array_equal(out[0], np.concatenate([short, np.zeros((2, 3), np.uint8)]))
    np.testing.assert_array_equal(out[1], full)
    frozen = full.copy()
    frozen.flags.writeable = False
    out = stack([frozen], 4)
    assert out.flags.writeable and not np.shares_memory(out, frozen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about a non-writable array
        torch.from_numpy(out)
    out = stack([np.ones(6, np.float64)], 6, np.float32)
    assert out.dtype == np.float32 and out.shape == (1, 6)
    assert stack([[True, False]], 3, bool).tolist() == [[True, False, False]]


def audio_logit(frames):
    """The frame-local model's audio logit of each frame's 640 samples (numpy or torch): its mean
    level, which varies from frame to frame in speech."""
    return 10.0 * abs(frames).mean(-1) - 1.0


class FrameLocalModel(torch.nn.Module):
    """A model whose every per-frame output is a fixed function of that frame's own input (its
    audio level, its mouth crop's mean grey), with no temporal context: stitched tracks must then
    equal that function of the whole clip exactly, whatever the windows. The clip logit is the
    window's mean audio level, so the clip probability's weighting is checkable."""

    def __init__(self, window: int = 40):
        super().__init__()
        self.config = SimpleNamespace(name="frame-local", window_frames=window, visual=SimpleNamespace(use_face=False),
                                      sync=SimpleNamespace(max_offset=2))

    def num_parameters(self) -> int:
        return 0

    def forward(self, mouth, audio, face=None, visual_mask=None, audio_mask=None):
        from avdetect.models.detector import DetectorOutput

        b, t = audio.shape[0], audio.shape[1] // SAMPLES_PER_FRAME
        level = audio_logit(audio.reshape(b, t, SAMPLES_PER_FRAME))  # (B, T)
        grey = mouth.float().mean(dim=(2, 3, 4)) / 255.0 if mouth is not None else torch.zeros(b, t)  # (B, T)
        vm = visual_mask if visual_mask is not None else torch.zeros(b, t, dtype=torch.bool)
        am = audio_mask if audio_mask is not None else torch.ones(b, t, dtype=torch.bool)
        fm = vm | am
        clip = (level * am).sum(1) / am.sum(1).clamp(min=1)  # (B,)
        return DetectorOutput(
            clip_logits=clip, category_logits=torch.zeros(b, 4), frame_visual_logits=grey, frame_audio_logits=level,
            frame_fused_logits=level + grey, boundary_logits=torch.stack([level, -level], -1),
            boundary_offsets=torch.stack([grey, grey], -1), sync_logits=torch.zeros(b, t, 5),
            visual_mask=vm, audio_mask=am, frame_mask=fm)


def _clip_inputs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    amp = rng.uniform(0.0, 0.4, n).astype(np.float32)
    audio = np.repeat(amp, SAMPLES_PER_FRAME) * rng.choice([-1.0, 1.0], n * SAMPLES_PER_FRAME).astype(np.float32)
    level = audio_logit(audio.reshape(n, SAMPLES_PER_FRAME))  # per-frame logit of the audio track
    mouth = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    valid = rng.random(n) > 0.2
    return level, audio, mouth, valid


def _windows(starts, window, n, audio, mouth, valid):
    for s in starts:
        e = min(n, s + window)
        yield WindowInputs(s, e - s, mouth=mouth[s:e], valid=valid[s:e], audio=audio[s * SAMPLES_PER_FRAME:e * SAMPLES_PER_FRAME],
                           audio_valid=np.ones(e - s, bool))


@pytest.mark.parametrize("hop", [7, 20, 30, 40])
@pytest.mark.parametrize("batch", [1, 3])
def test_stitched_tracks_are_exact_for_a_frame_local_model(hop, batch):
    """Any hop, any batch: the stitched tracks equal the model's per-frame function of the whole
    clip (a stitcher or window offset off by one frame breaks this)."""
    n = 137
    level, audio, mouth, valid = _clip_inputs(n)
    model = FrameLocalModel(window=40)
    engine = WindowEngine(model, n, hop=hop, batch_size=batch)
    res = run_windows(model, _windows(engine.starts(), 40, n, audio, mouth, valid), n, hop=hop, batch_size=batch)
    sig = 1 / (1 + np.exp(-level.astype(np.float64)))
    np.testing.assert_allclose(res.tracks["audio"].frame, sig, atol=1e-6)
    grey = mouth.reshape(n, -1).mean(1) / 255.0
    np.testing.assert_allclose(res.tracks["visual"].frame, 1 / (1 + np.exp(-grey)), atol=1e-6)
    np.testing.assert_allclose(res.tracks["audio"].start_dist, grey, atol=1e-6)
    # the clip probability: windows' probabilities averaged, weighted by their frames
    starts = window_starts(n, 40, hop)
    probs = [1 / (1 + np.exp(-level[s:s + 40].mean())) for s in starts]
    weights = [min(n, s + 40) - s for s in starts]
    assert res.windows == len(starts)
    assert res.clip_probability == pytest.approx(np.average(probs, weights=weights), abs=1e-6)


def test_a_clip_shorter_than_a_window_is_one_padded_window():
    n = 13
    level, audio, mouth, valid = _clip_inputs(n, seed=1)
    model = FrameLocalModel(window=40)
    res = run_windows(model, _windows([0], 40, n, audio, mouth, valid), n)
    assert res.windows == 1 and res.tracks["fused"].n_frames == n
    np.testing.assert_allclose(res.tracks["audio"].frame, 1 / (1 + np.exp(-level.astype(np.float64))), atol=1e-6)
    assert res.clip_probability == pytest.approx(1 / (1 + np.exp(-level.mean())), abs=1e-6)


def test_windows_must_carry_video_or_audio():
    from avdetect.errors import ConfigError

    model = FrameLocalModel()
    with pytest.raises(ConfigError, match="hop must be 1..40"):
        WindowEngine(model, 100, hop=41)
    engine = WindowEngine(model, 10)
    with pytest.raises(ValueError, match="neither video nor audio"):
        engine.add(WindowInputs(0, 10))
    with pytest.raises(ValueError, match="1..40 frames"):
        engine.add(WindowInputs(0, 41, audio=np.zeros(41 * SAMPLES_PER_FRAME, np.float32)))


def _result(n, clip, visual, audio):
    t = {k: ScoreTrack(frame=np.asarray(v, float)) for k, v in (("visual", visual), ("audio", audio),
                                                               ("fused", np.maximum(visual, audio)), ("sync", visual))}
    return InferenceResult(n, t, clip, None, 1, 0.0)


def test_clip_score_definition():
    n = 100
    visual = np.full(n, 0.1)
    audio = np.full(n, 0.2)
    audio[40:40 + STREAM_SCORE_FRAMES] = 0.9  # a most-fake half second
    visual[5] = 1.0  # one frame alone is not half a second
    present = np.ones(n, bool)
    s = clip_score(_result(n, 0.3, visual, audio), present, present)
    assert s.audio == pytest.approx(0.9) and s.fake_probability == pytest.approx(0.9)
    assert s.visual == pytest.approx(0.1 + 0.9 / STREAM_SCORE_FRAMES)
    assert s.clip == 0.3
    # frames where the stream is absent do not count
    absent = present.copy()
    absent[40:60] = False
    assert clip_score(_result(n, 0.3, visual, audio), present, absent).audio == pytest.approx(0.2)
    # the visual stream is examined only with faces in at least min_face_coverage of the frames
    few = np.zeros(n, bool)
    few[:5] = True
    s = clip_score(_result(n, 0.3, np.full(n, 0.95), audio), few, None, min_face_coverage=0.1)
    assert s.visual is None and s.audio is None and s.fake_probability == 0.3
    assert clip_score(_result(n, 0.3, np.full(n, 0.95), audio), few, None, min_face_coverage=0.05).visual == pytest.approx(0.95)
    assert stream_score(np.zeros(3), np.zeros(3, bool)) is None


# ---------------------------------------------------------------------------------------
# detect == evaluation == calibration
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from avdetect.models import create_model

    torch.manual_seed(3)
    return create_model("avdetect-tiny").save_pretrained(tmp_path_factory.mktemp("tiny") / "tiny")


def test_evaluation_score_equals_detect_fake_probability(tiny, tmp_path, one_torch_thread):
    """The clip score recipes/evaluate.py writes (and calibrates and selects on) is the
    fake_probability detect reports, for the same file and checkpoint."""
    from avdetect.api import Detector
    from avdetect.data.cache import FeatureCache, preprocess
    from avdetect.data.manifest import ManifestEntry
    from avdetect.data.predict import predict_clip
    from avdetect.models import AVDetector
    from avdetect.synth import ClipSpec, Manipulation, render_clip

    path = tmp_path / "clip.mp4"
    render_clip(path, ClipSpec(seed=5, duration=7.0, size=256, crf=20,
                               manipulation=Manipulation(kind="audio", segments=[(2.0, 3.5)])))
    entry = ManifestEntry(file="clip.mp4", path=str(path), dataset="synthetic", split="dev", label=1,
                          category="RealVideo-FakeAudio", modify_video=False, modify_audio=True)
    model = AVDetector.from_pretrained(tiny)
    preprocess([entry], tmp_path / "cache", faces=bool(model.config.visual.use_face), quiet=True,
               backend=model.config.visual.face_backend)  # the checkpoint's crops
    cache = FeatureCache(tmp_path / "cache")
    det = Detector.from_pretrained(tiny, device="cpu", forensics=False, thumbnails=False)
    report = det.detect(path)
    for batch in (1, 8):
        pred = predict_clip(model.eval(), cache, entry, batch_size=batch)
        # the cache holds audio as int16 (the only difference between the two paths' inputs) and the
        # report rounds to 6 decimals: measured 3e-6 apart
        assert pred.score == pytest.approx(report.fake_probability, abs=2e-5), batch
    # and the parts: the stitched fused track is the one detect reports
    fused = np.array([v if v is not None else 0.0 for v in report.tracks.fused])
    assert len(fused) == cache.records["clip.mp4"].n_frames


@pytest.mark.parametrize("hop", [17, 30])
def test_detect_feeds_every_frame_its_own_input(hop, tmp_path, one_torch_thread):
    """detect's stitched tracks with a frame-local model equal that model's function of the whole
    clip's audio and mouth crops, for any hop: detect's windows (sources + engine) hand each frame
    its own input (a window offset by a frame, or a stale face chunk, breaks this)."""
    from avdetect.api import Detector
    from avdetect.faces import FaceTracker
    from avdetect.media import load_media
    from avdetect.synth import ClipSpec, render_clip

    path = tmp_path / "clip.mp4"
    render_clip(path, ClipSpec(seed=9, duration=5.0, size=192, crf=20))
    det = Detector(FrameLocalModel(window=40), device="cpu")
    r = det.detect(path, hop=hop, forensics=False, thumbnails=False)
    media = load_media(path)
    n = r.tracks.n_frames
    audio = np.zeros(n * SAMPLES_PER_FRAME, np.float32)
    audio[:min(len(audio), len(media.audio))] = media.audio[:len(audio)]
    level = audio_logit(audio.reshape(n, SAMPLES_PER_FRAME).astype(np.float64))
    got = np.array(r.tracks.audio, dtype=float)
    np.testing.assert_allclose(got, np.round(1 / (1 + np.exp(-level)), 4), atol=1.5e-4)
    track = FaceTracker(backend="opencv", crops=True).track(media)  # the backend detect used (no checkpoint field)
    grey = track.mouth.reshape(n, -1).mean(1) / 255.0
    vis = np.array([np.nan if v is None else v for v in r.tracks.visual], dtype=float)
    assert (np.isfinite(vis) == track.valid).all()
    np.testing.assert_allclose(vis[track.valid], np.round(1 / (1 + np.exp(-grey[track.valid])), 4), atol=1.5e-4)
