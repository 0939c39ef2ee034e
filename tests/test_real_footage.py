"""The measure of the shipped default checkpoint: real footage is not accused.

Runs the whole default ``detect`` (faces, model, evidence, verdict rule) on the untouched real
clips of the held-out test people of ``data_manifests/realfaces_split.json`` and on the four
sample clips, and checks that none gets verdict ``fake`` or a flagged segment (``unknown`` with
a reason is allowed: it accuses no one). Skips when ``../shared`` is absent (a user's checkout).
"""
from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def detector():
    from avdetect.api import Detector

    return Detector.from_pretrained(None, device="cpu")


#: Held-out real clips the shipped checkpoint still accuses (measured; see its MODEL_CARD.md). Each is a
#: strict xfail: when a better checkpoint stops accusing it, the test fails until it is removed here.
KNOWN_FALSE_ACCUSATIONS = {
    "w2l_presenter.mov": "22.7 s presenter video, the longest held-out clip: the audio stream's most-fake half "
                         "second (0.91) and two audio segments pass a threshold set on 3-8 s dev clips (0.863)",
}


def _params():
    return [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FALSE_ACCUSATIONS[c.name]))
            if c.name in KNOWN_FALSE_ACCUSATIONS else c for c in _clips()]


@pytest.mark.skipif(not _clips(), reason="../shared/realfaces is not here")
@pytest.mark.parametrize("clip", _params(), ids=lambda p: p.name)
def test_default_checkpoint_does_not_accuse_real_footage(detector, clip):
    r = detector.detect(clip, thumbnails=False)
    assert r.verdict != "fake" and r.segments == [], r.summary()
    assert r.fake_probability < r.threshold or r.verdict == "unknown", r.summary()


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
