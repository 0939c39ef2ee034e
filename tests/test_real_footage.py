"""The measure of the shipped real-footage checkpoints: real footage is not accused.

Runs the whole default ``detect`` (faces, model, evidence, verdict rule) on the untouched real
clips of the held-out test people of ``data_manifests/realfaces_split.json`` and on the four
sample clips, and checks that none gets verdict ``fake`` or a flagged segment (``unknown`` with
a reason is allowed: it accuses no one). Skips when ``../shared`` is absent (a user's checkout).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SPLIT = REPO / "data_manifests" / "realfaces_split.json"


def _clips() -> list[Path]:
    if not (SHARED / "realfaces" / "real").is_dir():
        return []
    from avdetect.forge.corpus import split_sources

    test = [Path(s.path) for s in split_sources(SPLIT, SHARED, splits=("test",))]
    samples = sorted(p for p in (SHARED / "samples").iterdir() if p.suffix in (".mp4", ".mpg"))
    return test + samples


_DETECTORS: dict = {}


def _detector(name: str | None):
    from avdetect.api import Detector

    if name not in _DETECTORS:
        _DETECTORS.clear()  # one loaded model at a time
        _DETECTORS[name] = Detector.from_pretrained(name, device="cpu")
    return _DETECTORS[name]


#: Held-out real clips each shipped real-footage checkpoint still accuses (measured; see their
#: MODEL_CARD.md). Each is a strict xfail: when a better checkpoint stops accusing it, the test
#: fails until it is removed here. None: the default checkpoint.
KNOWN_FALSE_ACCUSATIONS = {
    # the default accused w2l_presenter.mov (p 0.908) until its threshold counted excerpts of the dev
    # clips (0.875 -> 0.939, 2026-12-02)
    None: {},
    # and the landmark checkpoint (p 0.937) until its threshold went from 0.923 to its cap, 0.95
    "avdetect-small-real-landmarks": {},
}


def _known(checkpoint, clip: Path) -> list:
    """A strict xfail for a clip ``checkpoint`` is known to accuse, else no mark."""
    reason = KNOWN_FALSE_ACCUSATIONS[checkpoint].get(clip.name)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _params():
    return [pytest.param(name, c, marks=_known(name, c), id=f"{name or 'default'}-{c.name}")
            for name in KNOWN_FALSE_ACCUSATIONS for c in _clips()]


def _reencoded_params():
    return [pytest.param(c, marks=_known(None, c), id=c.name) for c in _clips()]


@pytest.mark.skipif(not _clips(), reason="../shared/realfaces is not here")
@pytest.mark.parametrize("clip", _reencoded_params())
def test_default_checkpoint_does_not_accuse_a_reencoded_copy_of_real_footage(clip, tmp_path):
    """Real footage as a messaging app delivers it (H.264 at crf 28): measured, the threshold set
    without the re-encoding spread (0.863) accused this copy of ``grid_lbbc2a`` (p 0.8659) while
    the untouched clip sat just under it (0.8627); see recipes/evaluate_real.py."""
    sys.path.insert(0, str(REPO))
    from recipes.evaluate_real import _reencode

    copy = _reencode(str(clip), tmp_path / f"{clip.stem}_crf28.mp4", 28)
    r = _detector(None).detect(copy, thumbnails=False)
    assert r.verdict != "fake" and r.segments == [], r.summary()


def _excerpt_params():
    sys.path.insert(0, str(REPO))
    from recipes.evaluate_real import cut_offsets

    from avdetect.media import inspect_media

    # less 1 s and 2 s where a model window (4 s) is left, as calibration cuts its dev clips
    return [pytest.param(c, k, marks=_known(None, c), id=f"{c.name}-less-{k}s")
            for c in _clips() for k in cut_offsets(inspect_media(c).duration, 4.0, max_cut_s=2)]


@pytest.mark.skipif(not _clips(), reason="../shared/realfaces is not here")
@pytest.mark.parametrize("clip, cut_s", _excerpt_params())
def test_default_checkpoint_does_not_accuse_an_excerpt_of_real_footage(clip, cut_s, tmp_path):
    """Real footage less its first seconds, as an editor exports an excerpt: measured, the
    threshold set on whole dev clips only (0.875) accused the dev clip ``lp_d20`` cut by 1 s (p
    0.880) and 2 s (0.909); calibration now counts excerpts of the dev clips among its values."""
    sys.path.insert(0, str(REPO))
    from recipes.evaluate_real import CUT_CRF, _reencode

    excerpt = _reencode(str(clip), tmp_path / f"{clip.stem}_less{cut_s}s.mp4", CUT_CRF, start_s=cut_s)
    r = _detector(None).detect(excerpt, thumbnails=False)
    assert r.verdict != "fake" and r.segments == [], r.summary()


@pytest.mark.skipif(not _clips(), reason="../shared/realfaces is not here")
@pytest.mark.parametrize("checkpoint, clip", _params())
def test_real_footage_checkpoints_do_not_accuse_real_footage(checkpoint, clip):
    det = _detector(checkpoint)
    if checkpoint is not None:
        from avdetect.faces import backend_available

        backend = det.model.config.visual.face_backend
        if not backend_available(backend):
            pytest.skip(f"{checkpoint}'s face backend {backend} is not installed")
    r = det.detect(clip, thumbnails=False)
    assert r.verdict != "fake" and r.segments == [], r.summary()
    assert r.fake_probability < r.threshold or r.verdict == "unknown", r.summary()
    if checkpoint is not None:  # detect tracks faces with the backend the checkpoint's crops were made with
        assert r.provenance.parameters["face_backend"] == det.model.config.visual.face_backend


def test_default_checkpoint_is_calibrated_on_real_dev_clips():
    from avdetect.checkpoints import default_checkpoint_dir, read_calibration

    folder = default_checkpoint_dir()
    cal = read_calibration(folder)
    assert cal is not None and "real dev clips" in cal["method"]
    data = json.loads((folder / "calibration.json").read_text())
    values = data["dev_real_values"]
    assert len(values) >= 10 and max(values.values()) < cal["threshold"]  # no dev real clip accused at the threshold
    card = (folder / "MODEL_CARD.md").read_text()
    assert "not evidence" in card and "realfaces_split.json" in card


def test_landmark_checkpoint_is_calibrated_and_records_its_face_backend():
    from avdetect.checkpoints import read_calibration, resolve_checkpoint
    from avdetect.models import AVDetector

    folder = resolve_checkpoint("avdetect-small-real-landmarks")
    assert AVDetector.from_pretrained(folder).config.visual.face_backend == "mediapipe"
    cal = read_calibration(folder)
    data = json.loads((folder / "calibration.json").read_text())
    assert "real dev clips" in cal["method"] and max(data["dev_real_values"].values()) < cal["threshold"]
    assert 0 < cal["real_below"] < cal["threshold"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert "not evidence" in card and "mediapipe" in card
