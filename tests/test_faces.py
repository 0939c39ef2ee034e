"""Face and mouth tracks: coverage on real clips, mouth centring, any resolution, main speaker."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from avdetect import load_media
from avdetect.errors import FaceBackendError, MissingWeightsError
from avdetect.faces import FACE_SIZE, MOUTH_SIZE, FaceTracker, get_backend, track_faces
from avdetect.faces.crops import crop, crops_from_i420, mouth_box_from_landmarks
from conftest import SAMPLES_DIR, run_ffmpeg, sample_clips

CLIPS = sample_clips()


def _mouth_row(mouth: np.ndarray) -> float:
    """Height (fraction of the crop) of the darkest row of the central band below the nose:
    the lip line or the open mouth. An independent cue of where the mouth really is."""
    g = mouth.astype(np.float32).mean(-1)
    n = g.shape[0]
    profile = g[:, int(0.3 * n) : int(0.7 * n)].mean(1)
    lo, hi = int(0.2 * n), int(0.85 * n)
    return (lo + int(np.argmin(profile[lo:hi]))) / n


@pytest.mark.skipif(not CLIPS, reason=f"real sample clips not found at {SAMPLES_DIR}")
@pytest.mark.parametrize("clip", CLIPS, ids=[c.name for c in CLIPS])
def test_real_clips_coverage_and_mouth_centred(clip):
    media = load_media(clip)
    track = track_faces(media)
    assert len(track) == media.n_frames
    assert track.coverage >= 0.95
    assert len(track.faces) == 1 and track.main_track is not None
    assert track.mouth.shape == (media.n_frames, MOUTH_SIZE, MOUTH_SIZE, 3)
    assert track.face.shape == (media.n_frames, FACE_SIZE, FACE_SIZE, 3)
    # boxes stay inside the frame and move smoothly (no jitter of more than 10% of the face per frame)
    b = track.boxes[track.valid]
    w, h = media.working_size
    assert (b[:, 0] > -0.1 * w).all() and (b[:, 2] < 1.1 * w).all()
    side = (b[:, 2] - b[:, 0]).mean()
    assert np.abs(np.diff(b, axis=0)).max() < 0.1 * side
    # the mouth sits near the vertical centre of the mouth crop (0.48-0.56 measured on the samples)
    rows = [_mouth_row(m) for m in track.mouth[track.valid][::5]]
    assert abs(np.median(rows) - 0.5) < 0.12


def _overlay_clip(tmp_path, name, canvas, inputs, filters, audio_from=1, seconds=3):
    out = tmp_path / name
    args = ["-f", "lavfi", "-i", f"testsrc2=size={canvas}:rate=25:duration={seconds}"]
    for clip in inputs:
        args += ["-i", str(clip)]
    args += ["-filter_complex", filters, "-map", f"{audio_from}:a", "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"]
    run_ffmpeg(*args, str(out))
    return out


@pytest.mark.skipif(len(CLIPS) < 2, reason="needs the real sample clips")
def test_small_face_in_1080p_is_found(tmp_path):
    """A face 6% of the frame height in 1080p (the case where a fixed 320 px detector fails)."""
    clip = next(c for c in CLIPS if "KatieHill" in c.name)
    p = _overlay_clip(tmp_path, "small.mp4", "1920x1080", [clip], "[1:v]scale=110:110[s];[0:v][s]overlay=300:700")
    media = load_media(p)
    assert media.source_size == (1920, 1080)
    track = track_faces(media)
    assert track.coverage >= 0.95
    # the box lands on the inserted face (x 300..410, y 700..810 in source pixels)
    s = media.working_size[0] / 1920
    cx = (track.boxes[track.valid, 0] + track.boxes[track.valid, 2]).mean() / 2 / s
    cy = (track.boxes[track.valid, 1] + track.boxes[track.valid, 3]).mean() / 2 / s
    assert 300 < cx < 410 and 700 < cy < 810


@pytest.mark.skipif(len(CLIPS) < 2, reason="needs the real sample clips")
def test_main_speaker_is_the_persistent_large_face(tmp_path):
    """A large face all the time and a smaller one from 1 s on: both are tracked (the second
    found by the periodic whole-frame search), the large persistent one is the main speaker."""
    big = next(c for c in CLIPS if "Ocasio" in c.name)
    small = next(c for c in CLIPS if "KatieHill" in c.name)
    p = _overlay_clip(
        tmp_path, "two.mp4", "1280x720", [big, small],
        "[1:v]scale=400:400[b];[2:v]scale=200:200[s];[0:v][b]overlay=100:150[t];[t][s]overlay=900:100:enable='gte(t,1)'",
        seconds=4,
    )
    track = track_faces(load_media(p))
    assert len(track.faces) == 2
    main = track.main_track
    assert (track.track_ids[track.valid] == main).mean() > 0.95  # the chosen face in nearly every frame
    assert f"#{main} is the main speaker" in track.explanation and "other faces" in track.explanation
    main_box = track.boxes[track.track_ids == main]
    assert (main_box[:, 0] < 640).all()  # the big face is on the left


def test_faceless_video(tmp_path):
    p = tmp_path / "noface.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-c:v", "libx264", str(p))
    track = track_faces(load_media(p))
    assert len(track) == 50
    assert track.coverage < 0.1
    assert track.explanation == "no face was found" or len(track.faces) == 0
    assert (track.mouth[~track.valid] == 0).all()


def test_windows_equal_whole_track(tmp_path):
    p = tmp_path / "noface.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=3", "-c:v", "libx264", str(p))
    media = load_media(p)
    parts = list(FaceTracker(crops=False).iter_windows(media, window=20))
    assert [p.start_frame for p in parts] == list(range(0, 75, 20))
    assert sum(len(p) for p in parts) == 75
    assert parts[0].mouth is None


def test_crop_from_i420_matches_rgb_crop():
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC)
    i420 = cv2.cvtColor(base, cv2.COLOR_RGB2YUV_I420)
    rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    box = np.array([30.5, 20.2, 95.0, 84.7], np.float32)
    (got,) = crops_from_i420(i420, 160, 120, [box], [MOUTH_SIZE])
    want = crop(rgb, box, MOUTH_SIZE)
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 3.0
    # a box partly outside the frame is padded with black, not an error
    (edge,) = crops_from_i420(i420, 160, 120, [np.array([-40, -40, 40, 40], np.float32)], [32])
    assert edge.shape == (32, 32, 3) and (edge[:8, :8] == 0).all()


def test_mouth_box_from_landmarks():
    pts = np.zeros((68, 2), np.float32)
    pts[48:68] = np.array([[100 + 40 * np.cos(a), 200 + 15 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 20)])
    box = mouth_box_from_landmarks(pts)
    assert np.allclose([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], [100, 200], atol=3)
    assert box[2] - box[0] == pytest.approx(box[3] - box[1])
    assert box[2] - box[0] > 80  # wider than the lips


def test_face_alignment_without_weights_names_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import torch.hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch" / "hub"))
    with pytest.raises(MissingWeightsError) as info:
        get_backend("face-alignment")
    msg = str(info.value)
    assert "s3fd" in msg and "2DFAN" in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "never downloads" in msg


def test_unknown_backend():
    with pytest.raises(FaceBackendError, match="unknown face backend"):
        get_backend("dlib")
