"""Face and mouth tracks: coverage on real clips, mouth centring, any resolution, main speaker."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from avdetect import load_media
from avdetect.errors import FaceBackendError, MissingWeightsError
from avdetect.faces import (
    FACE_SIZE,
    MOUTH_SIZE,
    FaceTrack,
    FaceTracker,
    face_backend_names,
    get_backend,
    register_face_backend,
    track_faces,
    unregister_face_backend,
)
from avdetect.faces.backends import Detection
from avdetect.faces.crops import crop, crop_i420, mouth_box_from_face, mouth_box_from_landmarks
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


class _NumberedFrames:
    """A stand-in for Media: 320 x 240 I420 frames, the same still texture in each, whose first
    luma pixel is the frame index (mod 256), so that a test backend knows which frame it is shown."""

    working_size = (320, 240)

    def __init__(self, n):
        self.n_frames = n
        self.still = cv2.resize(np.random.default_rng(0).integers(0, 256, (45, 40), np.uint8), (320, 360))

    def iter_windows(self, size, start=0, stop=None, pixel_format="yuv420p"):
        stop = self.n_frames if stop is None else stop
        for first in range(start, stop, size):
            frames = np.repeat(self.still[None], min(size, stop - first), axis=0)
            frames[:, 0, 0] = np.arange(first, first + len(frames)) % 256
            yield first, frames


class _SmallFaceFrom:
    """A test backend: no face before frame ``appears``, then a face 12 % of the frame's height,
    which a search finds only when it looks for faces that small. Records every search."""

    name = "small-face-from"
    wants_rgb = False
    box = np.array([100.0, 80.0, 129.0, 109.0], np.float32)

    def __init__(self, appears):
        self.appears, self.searches = appears, []

    def detect(self, frame, min_face=0.06):
        i = int(frame[0, 0])
        self.searches.append((i, min_face))
        return [Detection(self.box.copy(), 0.9)] if i >= self.appears and min_face <= 0.12 else []

    def detect_near(self, frame, box, expand=1.8):
        return [Detection(self.box.copy(), 0.9)] if int(frame[0, 0]) >= self.appears else []


def test_a_stretch_without_faces_searches_for_small_faces_sparingly():
    """With nothing tracked, every keyframe looks for large faces (cheap) but the whole-frame
    search at the finest scale (0.05-0.2 s a frame at 640 x 360) runs only every search_every
    frames, as while a face is tracked: a small face is still found within that many frames."""
    from avdetect.faces.tracking import COARSE_MIN_FACE

    backend = _SmallFaceFrom(appears=112)
    tracker = FaceTracker(backend=backend, crops=False, search_every=40)
    track = tracker.track(_NumberedFrames(200))
    searched = [i for i, _ in backend.searches]
    fine = [i for i, m in backend.searches if m < COARSE_MIN_FACE]
    assert set(range(0, backend.appears, tracker.track_every)) <= set(searched)  # every faceless keyframe
    assert fine[:3] == [0, 40, 80]
    assert np.all(np.diff(fine) >= 40)
    found = int(np.argmax(track.valid))
    assert backend.appears <= found < backend.appears + 40
    assert found == min(i for i in fine if i >= backend.appears)
    assert track.valid[found:].all() and track.faces  # then tracked to the end, as one face


class _MainFaceAndOthers:
    """A test backend: a main face 40 % of the frame's height from frame 0, and from frame 60 a
    second face of ``share`` x its height; a search returns the faces of at least ``min_face``
    of the frame's height (what a detector told that floor sees). Records every search."""

    name = "main-and-others"
    wants_rgb = False
    main = np.array([40.0, 40.0, 136.0, 136.0], np.float32)  # 96 px of 240

    def __init__(self, share):
        side = 96.0 * share
        self.other = np.array([220.0, 60.0, 220.0 + side, 60.0 + side], np.float32)
        self.searches = []

    def _faces(self, i):
        return [self.main] + ([self.other] if i >= 60 else [])

    def detect(self, frame, min_face=0.06):
        i = int(frame[0, 0])
        self.searches.append((i, min_face))
        return [Detection(b.copy(), 0.9) for b in self._faces(i) if b[3] - b[1] >= min_face * 240]

    def detect_near(self, frame, box, expand=1.8):
        near = [b for b in self._faces(int(frame[0, 0])) if abs(b[0] - box[0]) + abs(b[1] - box[1]) < 20]
        return [Detection(b.copy(), 0.9) for b in near]


@pytest.mark.parametrize("share,found", [(0.45, True), (0.3, False)])
def test_searches_while_a_face_is_tracked_skip_faces_far_smaller_than_it(share, found):
    """While a face is tracked, whole-frame searches look only for faces at least
    0.4 x its height (TRACKED_SEARCH_SHARE; cheaper: a search's cost grows with the smallest face
    sought): a face of comparable size that appears later is still found and tracked, one far
    smaller is not (it could not become the main speaker while the tracked face is on screen)."""
    backend = _MainFaceAndOthers(share)
    tracker = FaceTracker(backend=backend, crops=False, search_every=20)
    track = tracker.track(_NumberedFrames(160))
    later = [m for i, m in backend.searches if i > 0]
    assert later and min(later) == pytest.approx(0.4 * 0.4, rel=0.05)  # 0.4 x the 40 % face
    assert track.valid.all() and track.main_track is not None
    main_box = track.boxes[100]
    assert abs(main_box[0] - backend.main[0]) < 5  # the main face stays the one used
    assert (len(track.faces) == 2) is found
    if found:
        other = next(t for t in track.faces if t.track_id != track.main_track)
        assert other.first_frame <= 60 + tracker.search_every


class _QuickAware(_MainFaceAndOthers):
    """As above, and it records whether each search was asked to be quick."""

    def detect(self, frame, min_face=0.06, quick=False):
        self.quick = getattr(self, "quick", [])
        self.quick.append((int(frame[0, 0]), quick))
        return super().detect(frame, min_face)


def test_searches_for_new_faces_while_tracking_are_quick_and_others_full():
    """The periodic search beside a tracked face asks the backend for its quick search; the
    searches with nothing tracked (the first frame) are full ones. A backend whose ``detect``
    takes no ``quick`` (``_MainFaceAndOthers``, the test above) is still searched."""
    backend = _QuickAware(0.45)
    track = FaceTracker(backend=backend, crops=False, search_every=20).track(_NumberedFrames(160))
    assert len(track.faces) == 2 and track.valid.all()
    assert backend.quick[0] == (0, False)
    assert [q for i, q in backend.quick if i > 0] and all(q for i, q in backend.quick if i > 0)


def test_opencv_quick_search_finds_the_faces_a_full_search_finds_on_real_footage():
    """The Haar quick search (a coarser scale step) finds the biggest face of a full search,
    at about the same box, on real clips' frames (every tenth): in at least 95 % of them."""
    from avdetect.faces.backends import OpenCVBackend
    from avdetect.faces.tracking import iou

    if not CLIPS:
        pytest.skip("the real sample clips (../shared/samples) are not here")
    backend, frames, hits = OpenCVBackend(), 0, 0
    for clip in CLIPS:
        media = load_media(clip)
        for _, window in media.iter_windows(10, pixel_format="yuv420p"):
            luma = np.ascontiguousarray(window[0][: media.frame_shape[0]])
            full = backend.detect(luma, min_face=0.1)
            if not full:
                continue
            big = max(full, key=lambda d: d.box[3] - d.box[1])
            frames += 1
            hits += any(iou(d.box, big.box) > 0.5 for d in backend.detect(luma, min_face=0.1, quick=True))
    assert frames >= 40 and hits >= 0.95 * frames, (hits, frames)


@pytest.fixture(scope="module")
def talking_face(tmp_path_factory):
    """A synthetic talking head, 3.2 s (80 frames): the face moves and the mouth opens and closes."""
    from avdetect.synth import ClipSpec, Manipulation, render_clip

    path = tmp_path_factory.mktemp("faces") / "talking.mp4"
    render_clip(path, ClipSpec(seed=7, duration=3.2, size=192, crf=18, manipulation=Manipulation(kind="real")))
    return load_media(path)


def test_windows_equal_whole_track(talking_face):
    """Tracking window by window (23 frames: boundaries between keyframes) gives, frame for frame,
    the boxes, validity, track ids and crops of tracking the clip in one piece."""
    media = talking_face
    whole = FaceTracker(crops=True).track(media)
    assert len(whole) == media.n_frames == 80 and whole.coverage > 0.9
    assert whole.mouth[whole.valid].std(axis=0).mean() > 1.0  # the crops change from frame to frame
    parts = list(FaceTracker(crops=True).iter_windows(media, window=23))
    assert [p.start_frame for p in parts] == [0, 23, 46, 69] and [len(p) for p in parts] == [23, 23, 23, 11]
    joined = FaceTrack.concatenate(parts)
    for name in ("boxes", "mouth_boxes", "confidence", "valid", "track_ids", "mouth", "face"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name), err_msg=name)
    assert [t.to_dict() for t in joined.tracks] == [t.to_dict() for t in whole.tracks]
    assert joined.stills == whole.stills and sorted(whole.stills) == [0, 25, 50, 75]
    boxes_only = list(FaceTracker(crops=False).iter_windows(media, window=23))
    assert boxes_only[0].mouth is None and not any(p.stills for p in boxes_only)
    np.testing.assert_array_equal(FaceTrack.concatenate(boxes_only).boxes, whole.boxes)


def test_face_stills_are_the_face_crops_as_jpeg(talking_face):
    """A face still (one a second, frames with a face) is the frame's face crop, JPEG-compressed:
    it decodes to the crop's size within JPEG error, and to none of the other frames' crops."""
    import base64

    import cv2

    from avdetect.faces.tracking import STILL_EVERY

    whole = FaceTracker(crops=True).track(talking_face)
    assert set(whole.stills) == set(range(0, len(whole), STILL_EVERY))
    assert all(kind == ("face" if whole.valid[i] else "frame") for i, (kind, _) in whole.stills.items())
    for i, (_, text) in whole.stills.items():
        img = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        assert img.shape == whole.face[i].shape
        err = np.abs(img.astype(float) - whole.face[i]).mean()
        assert err < 3.0, (i, err)
        others = [np.abs(img.astype(float) - whole.face[j]).mean() for j in whole.stills if j != i]
        assert min(others) > err


class FixedBox:
    """A test backend: one face, always at the same place (any frame, any search)."""

    name = "fixed-box"
    wants_rgb = True

    def __init__(self, box=(60.0, 50.0, 130.0, 120.0)):
        self.box = np.array(box, np.float32)
        self.calls = 0

    def detect(self, frame, min_face=0.06):
        assert frame.ndim == 3 and frame.shape[2] == 3  # wants_rgb: RGB frames
        self.calls += 1
        return [Detection(self.box.copy(), 0.9)]

    def detect_near(self, frame, box, expand=1.8):
        self.calls += 1
        return [Detection(self.box.copy(), 0.9)]


def test_a_registered_backend_tracks_a_clip(talking_face):
    """A new face backend is one class and one register_face_backend call: FaceTracker finds it
    by name and its boxes become the track."""
    register_face_backend("fixed_box", FixedBox)
    try:
        assert face_backend_names()[:2] == ("opencv", "face-alignment") and "fixed-box" in face_backend_names()
        tracker = FaceTracker(backend="Fixed-Box", track_every=1, detect_every=1)  # the detector on every frame
        track = tracker.track(talking_face)
    finally:
        unregister_face_backend("fixed-box")
    assert "fixed-box" not in face_backend_names()
    assert tracker.backend.calls > 0 and track.backend == "fixed-box" and track.coverage == 1.0
    np.testing.assert_allclose(track.boxes, np.tile(FixedBox().box, (len(track), 1)), atol=1e-4)
    np.testing.assert_allclose(track.mouth_boxes[0], mouth_box_from_face(FixedBox().box), atol=1e-4)
    assert track.mouth.shape == (80, MOUTH_SIZE, MOUTH_SIZE, 3) and track.mouth.any()
    # an instance works as well; an object that is no backend is refused with what it lacks
    assert FaceTracker(backend=FixedBox(), crops=False).track(talking_face).coverage == 1.0
    with pytest.raises(FaceBackendError, match="lacks detect_near"):
        FaceTracker(backend=SimpleNamespace(name="x", wants_rgb=False, detect=lambda frame, min_face=0.06: []))


def test_crop_from_i420_matches_rgb_crop():
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC)
    i420 = cv2.cvtColor(base, cv2.COLOR_RGB2YUV_I420)
    rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    box = np.array([30.5, 20.2, 95.0, 84.7], np.float32)
    got = crop_i420(i420, 160, 120, box, MOUTH_SIZE).astype(float)
    want = crop(rgb, box, MOUTH_SIZE).astype(float)
    # the two differ only in how 4:2:0 chroma is upsampled (strong on this colour-noise image)
    assert np.abs(got - want).mean() < 8.0
    assert np.corrcoef(got.mean(-1).ravel(), want.mean(-1).ravel())[0, 1] > 0.98
    # a box partly outside the frame is padded with black, not an error
    edge = crop_i420(i420, 160, 120, np.array([-40, -40, 40, 40], np.float32), 32)
    assert edge.shape == (32, 32, 3) and (edge[:14, :14] < 3).all() and edge[20:, 20:].mean() > 5


def test_downscaled_crops_are_not_aliased():
    """A fine stripe pattern shrunk 6x must average to grey, not alias into coarse stripes."""
    stripes = np.zeros((600, 600, 3), np.uint8)
    stripes[:, ::2] = 255
    i420 = cv2.cvtColor(stripes, cv2.COLOR_RGB2YUV_I420)
    out = crop_i420(i420, 600, 600, np.array([0, 0, 576, 576], np.float32), MOUTH_SIZE)
    assert out.std() < 8  # aliasing would leave stripes with std ~ 100
    assert abs(float(out.mean()) - 127) < 20


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
    with pytest.raises(FaceBackendError, match="unknown face backend 'dlib'; registered: opencv, face-alignment"):
        get_backend("dlib")
    with pytest.raises(FaceBackendError, match="unknown face backend"):
        FaceTracker(backend="dlib")
