"""Tests of the synthetic benchmark generator (avdetect.synth): determinism, metadata,
face coverage, and that forgeries change the content only inside their spans."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from avdetect.errors import ConfigError
from avdetect.faces import track_faces
from avdetect.media import load_media
from avdetect.synth import ClipSpec, Manipulation, generate, render, render_clip
from avdetect.synth.clip import encode
from avdetect.timegrid import FPS, SAMPLE_RATE

LAVDF_FIELDS = {"file", "split", "n_fakes", "fake_periods", "duration", "original", "modify_video",
                "modify_audio", "video_frames", "audio_channels", "audio_frames"}
AV1M_FIELDS = {"file", "original", "split", "modify_type", "audio_model", "fake_segments",
               "audio_fake_segments", "visual_fake_segments", "video_frames", "audio_frames"}
AV1M_SPLIT = {"train": "train", "dev": "val", "test": "test"}


def decode(path: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decoded RGB frames (T, H, W, 3) and mono 16 kHz float32 audio, read the way every
    later stage reads media (avdetect.media.load_media)."""
    media = load_media(path)
    frames = media.read_frames()
    assert frames.shape[1:] == (size, size, 3)
    return frames, media.audio


def face_coverage(path: Path) -> float:
    """Coverage of the default face backend's track (what detect and training will see)."""
    return track_faces(load_media(path)).coverage


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, n=6, seed=11, workers=1, min_duration=2.0, max_duration=2.6, real_share=0.2, clip_share=0.3,
             splits=(0.5, 0.25, 0.25))
    return out


# ---- determinism ---------------------------------------------------------------------------
def test_same_seed_same_files_serial_and_parallel(small_set, tmp_path):
    generate(tmp_path, n=6, seed=11, workers=2, min_duration=2.0, max_duration=2.6, real_share=0.2, clip_share=0.3,
             splits=(0.5, 0.25, 0.25))
    for name in ("metadata.json", "train_metadata.json", "val_metadata.json", "test_metadata.json", "synth_info.json"):
        assert (tmp_path / name).read_text() == (small_set / name).read_text(), name
    meta = json.loads((small_set / "metadata.json").read_text())
    for e in meta:
        assert sha(tmp_path / e["file"]) == sha(small_set / e["file"]), e["file"]


def test_different_seed_differs(tmp_path):
    a = render(ClipSpec(seed=1, duration=1.2))
    b = render(ClipSpec(seed=2, duration=1.2))
    assert a.frames.shape == b.frames.shape
    assert np.abs(a.frames.astype(int) - b.frames).mean() > 5
    assert not np.allclose(a.audio, b.audio)


# ---- metadata --------------------------------------------------------------------------------
def _on_grid(x: float) -> bool:
    return abs(x * FPS - round(x * FPS)) < 1e-6


def test_metadata_fields_and_consistency(small_set):
    lavdf = json.loads((small_set / "metadata.json").read_text())
    av1m = {}
    for split in ("train", "val", "test"):
        for e in json.loads((small_set / f"{split}_metadata.json").read_text()):
            assert set(e) == AV1M_FIELDS
            assert e["split"] == split
            av1m[e["file"]] = e
    assert len(lavdf) == 6 and len(av1m) == 6
    for e in lavdf:
        assert set(e) == LAVDF_FIELDS
        assert e["split"] in ("train", "dev", "test") and e["file"].startswith(e["split"] + "/")
        assert (small_set / e["file"]).is_file()
        assert e["video_frames"] == round(e["duration"] * FPS)
        assert e["audio_frames"] == round(e["duration"] * SAMPLE_RATE)
        assert e["audio_channels"] == 1
        assert e["n_fakes"] == len(e["fake_periods"])
        assert (e["n_fakes"] > 0) == (e["modify_video"] or e["modify_audio"])
        prev_end = -1.0
        for s, t in e["fake_periods"]:
            assert 0 <= s < t <= e["duration"] + 1e-9 and _on_grid(s) and _on_grid(t)
            assert s >= prev_end
            prev_end = t
        # the AV-Deepfake1M record says the same
        a = av1m[e["file"]]
        assert a["split"] == AV1M_SPLIT[e["split"]]
        assert a["fake_segments"] == e["fake_periods"]
        assert a["video_frames"] == e["video_frames"] and a["audio_frames"] == e["audio_frames"]
        assert bool(a["visual_fake_segments"]) == e["modify_video"]
        assert bool(a["audio_fake_segments"]) == e["modify_audio"]
        expect = {(False, False): "real", (True, False): "visual_modified", (False, True): "audio_modified",
                  (True, True): "both_modified"}[(e["modify_video"], e["modify_audio"])]
        assert a["modify_type"] == expect
        union = sorted({tuple(s) for s in a["visual_fake_segments"]} | {tuple(s) for s in a["audio_fake_segments"]})
        assert [list(s) for s in union] == e["fake_periods"]
    info = json.loads((small_set / "synth_info.json").read_text())["clips"]
    for c in info:
        if c["scope"] == "segments":
            for s, t in c["fake_segments"]:
                assert 0.2 - 1e-9 <= t - s <= 3.0 + 1e-9
            assert 1 <= len(c["fake_segments"]) <= 3
        elif c["scope"] == "clip":
            assert c["fake_segments"] == [[0.0, c["duration"]]]


def test_files_decode_to_declared_lengths(small_set):
    e = json.loads((small_set / "metadata.json").read_text())[0]
    frames, audio = decode(small_set / e["file"], 256)
    assert frames.shape[0] == e["video_frames"]
    assert abs(len(audio) - e["audio_frames"]) <= 1024  # AAC frame granularity at most


# ---- faces ------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["default", "holdout"])
def test_face_coverage(tmp_path, variant):
    covs = []
    for seed in (3, 4):
        path = tmp_path / f"{variant}{seed}.mp4"
        render_clip(path, ClipSpec(seed=seed, duration=2.0, variant=variant,
                                   manipulation=Manipulation(kind="both", scope="clip", strength=1.0)))
        covs.append(face_coverage(path))
    assert min(covs) >= 0.95, covs


# ---- manipulations only inside their span -----------------------------------------------
SEG = [(0.8, 1.6)]


@pytest.mark.parametrize("kind", ["visual", "audio", "both", "offset"])
def test_manipulation_changes_only_its_span_raw(kind):
    real = render(ClipSpec(seed=21, duration=2.4))
    fake = render(ClipSpec(seed=21, duration=2.4, manipulation=Manipulation(kind=kind, segments=SEG, strength=0.5)))
    f0, f1 = int(SEG[0][0] * FPS), int(SEG[0][1] * FPS)
    s0, s1 = f0 * 640, f1 * 640
    vdiff = np.abs(fake.frames.astype(np.int16) - real.frames).max(axis=(1, 2, 3))
    adiff = np.abs(fake.audio - real.audio)
    outside_v = np.r_[vdiff[:f0], vdiff[f1:]]
    assert outside_v.max() == 0
    assert np.all(adiff[:s0] == 0) and np.all(adiff[s1:] == 0)
    if kind in ("visual", "both"):
        assert fake.truth.visual_fake_segments == [[0.8, 1.6]]
        assert (vdiff[f0:f1] > 20).mean() > 0.8
        # the changed pixels sit on the lower face, not on the eyes, hair or background
        d = np.abs(fake.frames[f0:f1].astype(np.int16) - real.frames[f0:f1]).max(axis=(0, 3)) > 8
        ys, xs = np.nonzero(d)
        x0, y0, x1, y1 = fake.mouth_box
        margin = 16
        assert ys.min() >= y0 - margin and ys.max() <= y1 + margin and xs.min() >= x0 - margin and xs.max() <= x1 + margin
    else:
        assert vdiff.max() == 0 and fake.truth.visual_fake_segments == []
    if kind in ("audio", "both", "offset"):
        assert fake.truth.audio_fake_segments == [[0.8, 1.6]]
        assert np.sqrt(np.mean(adiff[s0:s1] ** 2)) > 0.2 * np.sqrt(np.mean(real.audio[s0:s1] ** 2))
    else:
        assert adiff.max() == 0 and fake.truth.audio_fake_segments == []


def test_manipulation_changes_only_its_span_decoded(tmp_path):
    real = render(ClipSpec(seed=21, duration=2.4))
    fake = render(ClipSpec(seed=21, duration=2.4, manipulation=Manipulation(kind="both", segments=SEG, strength=0.5)))
    # high quality, so that codec drift (P-frames after the span refer to changed frames,
    # look-ahead before it) stays far below the forgery itself
    encode(real, tmp_path / "r.mp4", crf=12)
    encode(fake, tmp_path / "f.mp4", crf=12)
    rv, ra = decode(tmp_path / "r.mp4", 256)
    fv, fa = decode(tmp_path / "f.mp4", 256)
    f0, f1 = int(SEG[0][0] * FPS), int(SEG[0][1] * FPS)
    diff = np.abs(fv.astype(np.float32) - rv).mean(axis=3)
    local = np.array([cv2.GaussianBlur(d, (0, 0), 3).max() for d in diff])  # strongest local change per frame
    outside = np.r_[local[:f0], local[f1:]]
    inside = local[f0:f1]
    assert outside.max() < 8
    assert np.median(inside) > 3 * outside.max() and (inside > 2 * outside.max()).mean() > 0.8
    n = min(len(ra), len(fa))
    ad = np.abs(fa[:n] - ra[:n])
    pad = 2048  # AAC frames overlap by 1024 samples
    s0, s1 = f0 * 640, f1 * 640
    inside = np.sqrt(np.mean(ad[s0:s1] ** 2))
    outside = max(np.sqrt(np.mean(ad[: s0 - pad] ** 2)), np.sqrt(np.mean(ad[s1 + pad:] ** 2)))
    assert inside > 20 * max(outside, 1e-6)


def test_whole_clip_and_holdout_styles():
    c = render(ClipSpec(seed=5, duration=1.6, variant="holdout",
                        manipulation=Manipulation(kind="both", scope="clip", strength=0.7)))
    t = c.truth
    assert t.fake_segments == [[0.0, 1.6]] and t.modify_type == "both_modified"
    assert t.visual_style in ("block", "flicker") and t.audio_style in ("fold", "hold")
    d = render(ClipSpec(seed=5, duration=1.6, manipulation=Manipulation(kind="both", scope="clip", strength=0.7))).truth
    assert d.visual_style in ("blend", "smooth", "colour") and d.audio_style in ("vocoder", "lowpass")
    assert d.identity_id != t.identity_id


# ---- bad input ----------------------------------------------------------------------------
def test_bad_arguments_raise_typed_errors(tmp_path):
    with pytest.raises(ConfigError):
        render(ClipSpec(seed=1, manipulation=Manipulation(kind="deep")))
    with pytest.raises(ConfigError):
        render(ClipSpec(seed=1, duration=2.0, manipulation=Manipulation(kind="audio", segments=[(1.5, 2.5)])))
    with pytest.raises(ConfigError):
        render(ClipSpec(seed=1, duration=3.0, manipulation=Manipulation(kind="visual", segments=[(0.4, 1.2), (1.0, 2.0)])))
    with pytest.raises(ConfigError):
        generate(tmp_path, n=2, splits=(0.5, 0.6, 0.1))
    with pytest.raises(ConfigError):
        render(ClipSpec(seed=1, size=250))


def test_cli_synth_reports_bad_split(tmp_path):
    from avdetect.cli import main

    assert main(["synth", "--out", str(tmp_path), "--n", "2", "--split", "0.5,x"]) == 2
    assert not any(tmp_path.iterdir())


# ---- lip-sync is learnable ----------------------------------------------------------------
def _mouth_dark_area(frames: np.ndarray, box: tuple[int, int, int, int], pad: int = 12) -> np.ndarray:
    """Per frame, share of clearly dark pixels around the mouth (an open mouth is dark inside)."""
    x0, y0, x1, y1 = box
    g = frames[:, max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad].astype(np.float32).mean(axis=3)
    return (g < 0.5 * np.median(g, axis=(1, 2), keepdims=True)).mean(axis=(1, 2))


def _log_energy(audio: np.ndarray, n_frames: int) -> np.ndarray:
    return np.log(np.sqrt((audio[: n_frames * 640].reshape(n_frames, 640) ** 2).mean(axis=1)) + 1e-3)


def test_mouth_follows_speech_and_forgery_breaks_it():
    """A crude hand-made sync score (mouth darkness vs audio energy) already tells real from
    lip-sync forgeries on average: the signal a learned sync model needs is there."""
    real_c, fake_c = [], []
    for seed in range(4):
        r = render(ClipSpec(seed=seed, duration=4.0))
        f = render(ClipSpec(seed=seed, duration=4.0, manipulation=Manipulation(kind="visual", scope="clip", strength=0.5)))
        e = _log_energy(r.audio, len(r.frames))
        real_c.append(np.corrcoef(_mouth_dark_area(r.frames, r.mouth_box), e)[0, 1])
        fake_c.append(np.corrcoef(_mouth_dark_area(f.frames, f.mouth_box), e)[0, 1])
    assert np.mean(real_c) > 0.3, real_c
    assert np.mean(real_c) - np.mean(fake_c) > 0.15, (real_c, fake_c)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["default", "holdout"])
def test_face_coverage_many_clips(tmp_path, variant):
    generate(tmp_path, n=24, seed=101, workers=2, variant=variant, min_duration=3.0, max_duration=3.0)
    covs = [face_coverage(tmp_path / e["file"]) for e in json.loads((tmp_path / "metadata.json").read_text())]
    assert min(covs) >= 0.95, covs


def test_cli_synth_writes_a_benchmark(tmp_path, capsys):
    from avdetect.cli import main

    out = tmp_path / "bench"
    assert main(["-q", "synth", "--out", str(out), "--n", "2", "--seed", "4", "--duration", "1.2",
                 "--workers", "1", "--variant", "holdout", "--difficulty", "hard"]) == 0
    assert "wrote 2 clips" in capsys.readouterr().out
    meta = json.loads((out / "metadata.json").read_text())
    assert len(meta) == 2 and all((out / e["file"]).is_file() for e in meta)
    info = json.loads((out / "synth_info.json").read_text())
    assert info["config"]["variant"] == "holdout" and info["config"]["difficulty"] == "hard"
    assert all(c["strength"] <= 0.45 for c in info["clips"])
