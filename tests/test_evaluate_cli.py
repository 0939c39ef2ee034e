"""`avdetect evaluate`: challenge file formats in, metrics table / JSON out, clear errors."""
from __future__ import annotations

import json

import pytest

from avdetect.cli import main
from avdetect.errors import DataFormatError
from avdetect.evaluation import evaluate_files, read_metadata, read_predictions, read_scores


def _lavdf_entry(name, periods, split="test", video=False, audio=False):
    return {
        "file": name, "split": split, "n_fakes": len(periods), "fake_periods": periods, "duration": 10.0,
        "original": None if not periods else "orig.mp4", "modify_video": video, "modify_audio": audio,
        "video_frames": 250, "audio_channels": 1, "audio_frames": 160000,
    }


def _av1m_entry(name, segs, vis=None, aud=None, mtype=None):
    return {
        "file": name, "original": None, "split": "val",
        "modify_type": mtype or ("real" if not segs else "both_modified"), "audio_model": "x",
        "fake_segments": segs, "audio_fake_segments": aud if aud is not None else segs,
        "visual_fake_segments": vis if vis is not None else segs, "video_frames": 250, "audio_frames": 160000,
    }


@pytest.fixture
def lavdf_files(tmp_path):
    meta = [
        _lavdf_entry("a.mp4", [[0.0, 10.0]], video=True),
        _lavdf_entry("b.mp4", [[0.0, 10.0]], audio=True),
        _lavdf_entry("c.mp4", []),
        _lavdf_entry("t.mp4", [[1.0, 2.0]], split="train", video=True),
    ]
    preds = {  # hand-derived in test_ap_two_videos_by_hand: AP@.5 = 1/3
        "a.mp4": [[0.9, 0.0, 10.0]],
        "b.mp4": [[0.8, 20.0, 30.0], [0.7, 0.0, 10.0]],
        "c.mp4": [[0.1, 3.0, 4.0]],
    }
    m, p = tmp_path / "metadata.json", tmp_path / "pred.json"
    m.write_text(json.dumps(meta))
    p.write_text(json.dumps(preds))
    s = tmp_path / "scores.txt"
    s.write_text("a.mp4;0.9\nb.mp4;0.4\n\nc.mp4;0.5\n")
    return m, p, s


def _run_json(capsys, *argv):
    assert main(["evaluate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_lavdf_json_by_hand(lavdf_files, capsys):
    m, p, s = lavdf_files
    out = _run_json(capsys, "--metadata", str(m), "--predictions", str(p), "--scores", str(s), "--split", "test")
    assert out["protocol"] == "lavdf" and out["dataset"] == "lavdf" and out["n_videos"] == 3
    # Pool: .9 TP, .8 FP, .7 TP, .1 FP (real video): precision 1 .5 2/3 .5, recall .5 .5 1 1.
    # Curve (1,0) (1,.5) (1,2/3) (.5,.5) (.5,1): AP = .5 * 2/3 = 1/3 at every threshold
    # (the matches are exact).
    assert list(out["ap"]) == ["0.5", "0.75", "0.95"]
    for v in out["ap"].values():
        assert v == pytest.approx(1 / 3)
    assert list(out["ar"]) == ["100", "50", "20", "10"]
    assert out["ar"]["10"] == pytest.approx(1.0)
    # scores: fake a .9, b .4; real c .5 -> AUC 1/2, accuracy (a right, b wrong, c wrong) 1/3
    assert out["auc"] == pytest.approx(0.5)
    assert out["accuracy"] == pytest.approx(1 / 3)


def test_lavdf_table_and_subsets(lavdf_files, capsys):
    m, p, _ = lavdf_files
    assert main(["evaluate", "--metadata", str(m), "--predictions", str(p), "--split", "test"]) == 0
    text = capsys.readouterr().out
    assert "AP@0.5" in text and "AR@100" in text and "33.33" in text
    # visual subset drops b (audio only): pool .9 TP, .1 FP -> AP 0, AR 1
    out = _run_json(capsys, "--metadata", str(m), "--predictions", str(p), "--split", "test", "--subset", "visual_only")
    assert out["n_videos"] == 2 and out["ap"]["0.5"] == 0.0 and out["ar"]["100"] == 1.0


def test_av1m_format_detected_and_protocol(tmp_path, capsys):
    meta = [_av1m_entry("x.mp4", [[1.0, 2.0]], vis=[], aud=[[1.0, 2.0]], mtype="audio_modified"), _av1m_entry("y.mp4", [])]
    preds = {"x.mp4": [[0.9, 1.0, 2.0]], "y.mp4": [[0.2, 0.0, 1.0]]}
    m, p = tmp_path / "val_metadata.json", tmp_path / "p.json"
    m.write_text(json.dumps(meta))
    p.write_text(json.dumps(preds))
    out = _run_json(capsys, "--metadata", str(m), "--predictions", str(p))
    assert out["protocol"] == "av1m" and out["dataset"] == "av1m"
    assert list(out["ar"]) == ["50", "30", "20", "10", "5"]
    assert out["ar"]["5"] == 1.0
    out = _run_json(capsys, "--metadata", str(m), "--predictions", str(p), "--protocol", "lavdf")
    assert list(out["ap"]) == ["0.5", "0.75", "0.95"]
    # visual target: no visual segment anywhere -> AP undefined (null), AR 0
    out = _run_json(capsys, "--metadata", str(m), "--predictions", str(p), "--target", "visual")
    assert out["ap"]["0.5"] is None and out["ar"]["50"] == 0.0


def test_fakeavceleb_csv_per_category(tmp_path, capsys):
    csv = tmp_path / "meta_data.csv"
    csv.write_text(
        "source,target1,target2,method,category,type,race,gender,path\n"
        "id0,-,-,real,A,RealVideo-RealAudio,African,men,00001.mp4,FakeAVCeleb/RealVideo-RealAudio/African/men/id0\n"
        "id0,-,-,rtvc,B,RealVideo-FakeAudio,African,men,00002_fake.mp4,FakeAVCeleb/RealVideo-FakeAudio/African/men/id0\n"
        "id1,-,-,fsgan,C,FakeVideo-RealAudio,Asian,women,00003.mp4,FakeAVCeleb/FakeVideo-RealAudio/Asian/women/id1\n"
    )
    scores = tmp_path / "s.txt"
    scores.write_text(
        "RealVideo-RealAudio/African/men/id0/00001.mp4;0.2\n"
        "RealVideo-FakeAudio/African/men/id0/00002_fake.mp4;0.3\n"
        "FakeAVCeleb/FakeVideo-RealAudio/Asian/women/id1/00003.mp4;0.8\n"
    )
    out = _run_json(capsys, "--metadata", str(csv), "--scores", str(scores))
    assert out["dataset"] == "fakeavceleb" and out["n_fake"] == 2
    assert out["auc"] == 1.0 and out["accuracy"] == pytest.approx(2 / 3)
    assert out["category_accuracy"] == {"FakeVideo-RealAudio": 1.0, "RealVideo-FakeAudio": 0.0, "RealVideo-RealAudio": 1.0}


# ---------------------------------------------------------------------------------------
# errors: exit status 2, one line naming the file and the entry
def _err(capsys, *argv) -> str:
    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_missing_video_names_it_and_hints_split(lavdf_files, capsys):
    m, p, _ = lavdf_files
    err = _err(capsys, "--metadata", str(m), "--predictions", str(p))
    assert str(p) in err and "'t.mp4'" in err and "--split" in err


@pytest.mark.parametrize(
    "content,needle",
    [
        ('{"a.mp4": [[0.9, 3.0, 2.0]]}', "entry 'a.mp4' proposal 0: start 3.0 > end 2.0"),
        ('{"a.mp4": [[0.9, 1.0]]}', "entry 'a.mp4' proposal 0: expected [confidence, start, end]"),
        ('{"a.mp4": [[0.9, "x", 2.0]]}', "entry 'a.mp4' proposal 0: expected a number"),
        ('{"a.mp4": {"x": 1}}', "entry 'a.mp4': expected a list"),
        ('[1, 2]', "expected a JSON object"),
        ('{"a.mp4": [[0.9, 1.0, 2.0]', "not valid JSON"),
    ],
)
def test_bad_prediction_files(tmp_path, content, needle):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(DataFormatError) as info:
        read_predictions(p)
    assert needle in str(info.value) and str(p) in str(info.value)


def test_bad_metadata_and_scores(tmp_path, capsys):
    m = tmp_path / "m.json"
    m.write_text(json.dumps([_lavdf_entry("a.mp4", [[5.0, 1.0]])]))
    with pytest.raises(DataFormatError, match=r"entry 0 \('a.mp4'\) fake_periods segment 0: start 5.0 > end 1.0"):
        read_metadata(m)
    m.write_text(json.dumps([_av1m_entry("x.mp4", []), {"file": "y.mp4", "visual_fake_segments": []}]))
    with pytest.raises(DataFormatError, match=r"entry 1 \('y.mp4'\): missing 'fake_segments'"):
        read_metadata(m, target="visual")
    m.write_text(json.dumps([{"file": "a.mp4", "labels": []}]))
    with pytest.raises(DataFormatError, match="neither 'fake_periods'"):
        read_metadata(m)
    s = tmp_path / "s.txt"
    s.write_text("a.mp4;0.5\nb.mp4 0.3\n")
    with pytest.raises(DataFormatError, match="line 2: expected 'file;score'"):
        read_scores(s)
    s.write_text("a.mp4;abc\n")
    with pytest.raises(DataFormatError, match="line 1: score 'abc' is not a number"):
        read_scores(s)
    err = _err(capsys, "--metadata", str(tmp_path / "nope.json"), "--scores", str(s))
    assert "nope.json: file not found" in err


def test_needs_something_to_evaluate(lavdf_files, capsys):
    m, _, _ = lavdf_files
    assert "--predictions" in _err(capsys, "--metadata", str(m))
    with pytest.raises(DataFormatError):
        evaluate_files(m)


def test_extra_prediction_entries_are_ignored(lavdf_files, tmp_path):
    m, p, _ = lavdf_files
    preds = json.loads(p.read_text())
    preds["zzz.mp4"] = [[0.99, 0.0, 1.0]]
    p2 = tmp_path / "p2.json"
    p2.write_text(json.dumps(preds))
    assert evaluate_files(m, p2, split="test")["ap"] == evaluate_files(m, p, split="test")["ap"]
