"""The landmark face backend (mediapipe, weights inside its wheel), landmark features, blinks
from eye openness, and detect tracking faces with the backend its checkpoint was trained on."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from avdetect.faces.crops import FACE_FEATURES, landmark_features
from conftest import run_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
needs_mediapipe = pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe is not installed")


def _face68(aperture: float = 0.0, eye_open: float = 0.3) -> np.ndarray:
    """68 iBUG points (NaN but for eyes and mouth): a mouth 60 px wide, eyes 30 px wide, 100 px apart."""
    p = np.full((68, 2), np.nan)
    for k, cx in ((36, 100.0), (42, 200.0)):  # corner, up, up, corner, down, down
        h = eye_open * 30 / 2
        p[k:k + 6] = [(cx - 15, 100), (cx - 5, 100 - h), (cx + 5, 100 - h), (cx + 15, 100), (cx + 5, 100 + h), (cx - 5, 100 + h)]
    p[48], p[54] = (120, 200), (180, 200)
    p[49:54] = [(130, 195), (140, 193), (150, 194), (160, 193), (170, 195)]
    p[55:60] = [(170, 206), (160, 208), (150, 209), (140, 208), (130, 206)]
    p[60], p[64] = (125, 200), (175, 200)
    p[61:64] = [(140, 200 - aperture * 30), (150, 200 - aperture * 30), (160, 200 - aperture * 30)]
    p[65:68] = [(160, 200 + aperture * 30), (150, 200 + aperture * 30), (140, 200 + aperture * 30)]
    return p


def test_landmark_features_measure_what_they_say():
    closed = landmark_features(_face68(aperture=0.0, eye_open=0.3))
    opened = landmark_features(_face68(aperture=0.2, eye_open=0.3))
    blink = landmark_features(_face68(aperture=0.0, eye_open=0.05))
    assert FACE_FEATURES == ("lip_aperture", "mouth_width", "eye_openness")
    assert closed[0] == pytest.approx(0.0, abs=1e-6) and opened[0] == pytest.approx(0.2, abs=1e-6)  # 12 px open / 60 px wide
    assert closed[1] == pytest.approx(0.6, abs=1e-6)  # 60 px mouth / 100 px between the eyes
    assert closed[2] == pytest.approx(0.3, abs=1e-6) and blink[2] == pytest.approx(0.05, abs=1e-6)
    missing = np.full((68, 2), np.nan)
    assert np.isnan(landmark_features(missing)).all()


def test_blinks_from_eye_openness():
    from avdetect.forensics.blinks import eyes_from_openness, find_blinks

    rng = np.random.default_rng(0)
    openness = 0.3 + 0.01 * rng.standard_normal(300)
    for a in (50, 140, 230):  # three blinks of 3 frames (120 ms)
        openness[a:a + 3] = 0.08
    openness[100] = np.nan  # a frame not measured
    valid = np.ones(300, bool)
    eyes = eyes_from_openness(openness, valid)
    assert eyes[100] == -1 and (eyes[50:53] == 0).all() and eyes[60] == 2
    assert find_blinks(eyes, valid) == [(50, 53), (140, 143), (230, 233)]
    # a squint of 20 frames is no blink
    openness[150:170] = 0.1
    assert (150, 170) not in find_blinks(eyes_from_openness(openness, valid), valid)


@needs_mediapipe
def test_mediapipe_tracks_a_real_face_with_landmarks_every_frame():
    from avdetect.faces import FaceTracker, default_face_backend
    from avdetect.media import load_media

    clip = SAMPLES / "sadtalker_WDA_KatieHill_000.mp4"
    if not clip.is_file():
        pytest.skip("../shared/samples is absent")
    assert default_face_backend() == "mediapipe"
    track = FaceTracker(backend="auto").track(load_media(clip), stop=100)
    assert track.backend == "mediapipe" and track.coverage > 0.95
    f = track.features[track.valid]
    assert np.isfinite(f).all(axis=1).mean() > 0.95  # measured on every frame, not interpolated
    assert 0.15 < np.nanmedian(f[:, 2]) < 0.45  # open eyes
    assert np.nanstd(f[:, 0]) > 0.01  # the lips move while she talks
    b, m = track.boxes[track.valid], track.mouth_boxes[track.valid]
    cx, cy = (m[:, 0] + m[:, 2]) / 2, (m[:, 1] + m[:, 3]) / 2
    assert ((cx > b[:, 0]) & (cx < b[:, 2]) & (cy > (b[:, 1] + b[:, 3]) / 2) & (cy < b[:, 3])).mean() > 0.95  # lower face


def _slope(crop: np.ndarray) -> float:
    """Slope (dy/dx) of the bright bar in a crop, by least squares over its pixels."""
    ys, xs = np.nonzero(crop[..., 0] > 128)
    return float(np.polyfit(xs, ys, 1)[0])


def test_crops_are_levelled_on_the_eyes():
    import cv2

    from avdetect.faces.crops import crop_i420, eye_roll, mouth_box_from_landmarks

    theta = np.deg2rad(15.0)  # a head tilted so that the eye on the image's right is lower
    centre = np.array([160.0, 120.0])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    pts = (_face68() - [150.0, 150.0]) @ rot.T + centre  # the synthetic face, turned about its middle
    assert eye_roll(pts) == pytest.approx(theta, abs=1e-6)
    assert eye_roll(_face68()) == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(eye_roll(np.full((68, 2), np.nan)))
    # lips drawn as a bright bar from corner to corner, on a frame converted to I420 as decoded
    frame = np.zeros((240, 320, 3), np.uint8)
    cv2.line(frame, tuple(int(v) for v in pts[48]), tuple(int(v) for v in pts[54]), (255, 255, 255), 5)
    i420 = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)
    box = mouth_box_from_landmarks(pts)
    tilted = crop_i420(i420, 320, 240, box, 96)
    level = crop_i420(i420, 320, 240, box, 96, eye_roll(pts))
    assert _slope(tilted) == pytest.approx(np.tan(theta), abs=0.05)
    assert abs(_slope(level)) < 0.03  # the lips come out horizontal
    ys, xs = np.nonzero(level[..., 0] > 128)  # and centred: the box centre stays the crop centre
    assert abs(xs.mean() - 47.5) < 2 and abs(ys.mean() - 47.5) < 2
    assert np.array_equal(crop_i420(i420, 320, 240, box, 96, 0.0), tilted)  # no roll: the axis-aligned crop


@needs_mediapipe
def test_mediapipe_measures_the_head_roll_of_a_tilted_face(tmp_path):
    from avdetect.faces import FaceTracker
    from avdetect.media import load_media

    clip = SAMPLES / "sadtalker_WDA_KatieHill_000.mp4"
    if not clip.is_file():
        pytest.skip("../shared/samples is absent")
    tilted = tmp_path / "tilted.mp4"  # turned 12 degrees clockwise on screen
    run_ffmpeg("-i", str(clip), "-t", "2", "-vf", "rotate=12*PI/180", "-an", "-c:v", "libx264", "-crf", "18", str(tilted))
    straight = FaceTracker(backend="mediapipe").track(load_media(clip), stop=50)
    turned = FaceTracker(backend="mediapipe").track(load_media(tilted), stop=50)
    assert turned.valid.mean() > 0.9
    d = np.median(turned.roll[turned.valid]) - np.median(straight.roll[straight.valid])
    assert np.rad2deg(d) == pytest.approx(12.0, abs=2.0)
    # levelled, the mouth crops of the turned copy look like the straight ones (within the copy's blur)
    a = straight.mouth[straight.valid][:40].astype(np.float32).mean(axis=(0, 3))
    b = turned.mouth[turned.valid][:40].astype(np.float32).mean(axis=(0, 3))
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_opencv_crops_stay_axis_aligned(clip):
    from avdetect.faces import FaceTracker
    from avdetect.media import load_media

    track = FaceTracker(backend="opencv").track(load_media(clip), stop=25)
    assert track.valid.any() and not track.roll.any()


@needs_mediapipe
def test_mediapipe_finds_no_face_where_there_is_none(tmp_path):
    from avdetect.faces import FaceTracker
    from avdetect.media import load_media

    p = tmp_path / "noface.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-c:v", "libx264", str(p))
    track = FaceTracker(backend="mediapipe").track(load_media(p))
    assert track.coverage == 0.0 and np.isnan(track.features).all()


def test_auto_falls_back_to_opencv_without_mediapipe(monkeypatch):
    import avdetect.faces.backends as backends

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mediapipe" else real(name, *a))
    assert backends.default_face_backend() == "opencv" and backends.resolve_backend_name("auto") == "opencv"
    assert backends.get_backend("auto").name == "opencv"


# ---------------------------------------------------------------------------------------
# detect uses the checkpoint's face backend
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from avdetect.synth import ClipSpec, render_clip

    path = tmp_path_factory.mktemp("lm") / "clip.mp4"
    render_clip(path, ClipSpec(seed=4, duration=3.0, size=192))
    return path


def _tiny(tmp_path: Path, backend: str | None) -> Path:
    import torch

    from avdetect.models import create_model

    torch.manual_seed(0)
    model = create_model("avdetect-tiny")
    if backend is not None:
        model.config.visual.face_backend = backend
    return model.save_pretrained(tmp_path / f"tiny-{backend}")


def test_detect_tracks_faces_with_the_checkpoints_backend(clip, tmp_path, one_torch_thread):
    from avdetect.api import Detector
    from avdetect.models import AVDetector

    old = _tiny(tmp_path, None)
    assert AVDetector.from_pretrained(old).config.visual.face_backend == "opencv"  # written before the field: Haar
    r = Detector.from_pretrained(old, device="cpu").detect(clip, forensics=False, thumbnails=False)
    assert r.provenance.parameters["face_backend"] == "opencv" and "face_backend" not in [w.code for w in r.warnings]
    # overriding it is allowed, and said
    r = Detector.from_pretrained(old, device="cpu").detect(clip, forensics=False, thumbnails=False,
                                                           face_backend="opencv")
    assert "face_backend" not in [w.code for w in r.warnings]
    if HAS_MEDIAPIPE:
        r = Detector.from_pretrained(old, device="cpu").detect(clip, forensics=False, thumbnails=False,
                                                               face_backend="mediapipe")
        assert r.provenance.parameters["face_backend"] == "mediapipe"
        assert any(w.code == "face_backend" and "trained on opencv" in w.message for w in r.warnings)
        new = _tiny(tmp_path, "mediapipe")
        r = Detector.from_pretrained(new, device="cpu").detect(clip, forensics=False, thumbnails=False)
        assert r.provenance.parameters["face_backend"] == "mediapipe" and "face_backend" not in [w.code for w in r.warnings]


def test_detect_falls_back_when_the_checkpoints_backend_is_missing(clip, tmp_path, monkeypatch, one_torch_thread):
    import avdetect.faces.mediapipe_backend as mpb
    from avdetect.api import Detector

    ckpt = _tiny(tmp_path, "mediapipe")
    monkeypatch.setattr(mpb, "available", lambda: False)
    r = Detector.from_pretrained(ckpt, device="cpu").detect(clip, forensics=False, thumbnails=False)
    assert r.provenance.parameters["face_backend"] == "opencv"
    assert any(w.code == "face_backend" and "mediapipe is not installed" in w.message for w in r.warnings)
