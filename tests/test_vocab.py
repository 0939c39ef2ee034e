"""The shared vocabulary: one categories tuple, one mapping to AV-Deepfake1M names, one place for
the crop and decode sizes, and everyone reading them from there."""
from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from avdetect.vocab import (CATEGORIES, DECODE_MAX_SIDE, FACE_SIZE, MODIFY_TYPES, MOUTH_SIZE, category_index,
                            category_of, modalities_of, modify_type_of)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "avdetect"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_category_order_is_the_model_index_rule():
    assert CATEGORIES == ("RealVideo-RealAudio", "FakeVideo-RealAudio", "RealVideo-FakeAudio", "FakeVideo-FakeAudio")
    assert MODIFY_TYPES == ("real", "visual_modified", "audio_modified", "both_modified")
    for v in (False, True):
        for a in (False, True):
            i = category_index(v, a)
            assert i == int(v) + 2 * int(a)
            assert category_of(v, a) == CATEGORIES[i]
            assert modify_type_of(v, a) == MODIFY_TYPES[i]
            assert modalities_of(CATEGORIES[i]) == (v, a) == modalities_of(MODIFY_TYPES[i])
            # the names say it too
            assert CATEGORIES[i].startswith("FakeVideo") == v and CATEGORIES[i].endswith("FakeAudio") == a
    with pytest.raises(ValueError, match="unknown category 'fake'.*RealVideo-RealAudio.*both_modified"):
        modalities_of("fake")


def test_vocab_is_the_bottom_floor():
    assert not any(m == "avdetect" or m.startswith("avdetect.") for m in _imported_modules(PACKAGE / "vocab.py"))
    code = ("import sys, avdetect.vocab; "
            "print(sorted(m for m in sys.modules if m.startswith('avdetect')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert set(eval(proc.stdout)) <= {"avdetect", "avdetect._version", "avdetect.vocab"}


def test_one_categories_tuple_and_one_set_of_sizes():
    from avdetect.faces import crops
    from avdetect.models import CATEGORIES as model_categories
    from avdetect.models import detector

    assert model_categories is CATEGORIES and detector.CATEGORIES is CATEGORIES
    assert (crops.MOUTH_SIZE, crops.FACE_SIZE) == (MOUTH_SIZE, FACE_SIZE) == (96, 128)
    from avdetect.models import model_config

    cfg = model_config("avdetect-small").visual
    assert (cfg.input_mouth_size, cfg.input_face_size) == (MOUTH_SIZE, FACE_SIZE)
    import avdetect.evaluation

    assert not hasattr(avdetect.evaluation, "FAKEAVCELEB_CATEGORIES")


def test_every_decode_default_is_decode_max_side():
    """Preprocessing, forging, detect and load_media decode at one size."""
    from avdetect.data.cache import preprocess, process_clip
    from avdetect.forge.files import forge_folder
    from avdetect.media import inspect_media, load_media

    assert DECODE_MAX_SIDE == 640
    for fn in (preprocess, process_clip, forge_folder, load_media, inspect_media):
        assert inspect.signature(fn).parameters["max_side"].default == DECODE_MAX_SIDE, fn.__qualname__
    from avdetect.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["preprocess", "m.jsonl", "--out", "c"]).max_side == DECODE_MAX_SIDE
    assert parser.parse_args(["forge", "a.mp4", "--out", "o"]).max_side == DECODE_MAX_SIDE
    from avdetect.api import DetectOptions

    assert DetectOptions().max_side == DECODE_MAX_SIDE


def test_data_reads_formats_from_data_not_from_evaluation():
    for path in sorted((PACKAGE / "data").glob("*.py")):
        assert "avdetect.evaluation" not in _imported_modules(path), path.name
    from avdetect import evaluation
    from avdetect.data import formats

    for name in ("read_metadata", "read_predictions", "read_scores", "Metadata", "VideoLabel", "AV1M_TARGETS"):
        assert getattr(evaluation, name) is getattr(formats, name), name


def test_av1m_modify_type_follows_the_mapping(tmp_path):
    from avdetect.data.formats import read_metadata
    from avdetect.errors import DataFormatError

    rows = [{"file": f"{t}.mp4", "split": "val", "modify_type": t, "fake_segments": [] if t == "real" else [[0.5, 1.0]],
             "visual_fake_segments": [], "audio_fake_segments": [], "video_frames": 50} for t in MODIFY_TYPES]
    p = tmp_path / "val_metadata.json"
    p.write_text(json.dumps(rows))
    meta = read_metadata(p)
    for v, t in zip(meta.videos, MODIFY_TYPES):
        assert (v.modify_video, v.modify_audio) == modalities_of(t) and v.category == t
        assert v.duration == 2.0  # 50 frames on the 25 Hz grid
    p.write_text(json.dumps([{**rows[1], "modify_type": "face_swapped"}]))
    with pytest.raises(DataFormatError, match="unknown modify_type 'face_swapped'; known: real, visual_modified"):
        read_metadata(p)


def test_version_lives_in_version_module():
    import avdetect
    from avdetect._version import __version__

    assert avdetect.__version__ == __version__
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = { attr = "avdetect._version.__version__" }' in text
