"""Issue 15: the recipes on mock trees in the official layouts of LAV-DF, AV-Deepfake1M and
FakeAVCeleb. Each tree is built here in tmp_path, with metadata written from the datasets' own
documentation (not from our example manifests):

* LAV-DF (github.com/ControlNet/LAV-DF, ``dataset/lavdf.py``): ``ROOT/metadata.json``, a list of
  {file, n_fakes, fake_periods, duration, original, modify_video, modify_audio, split,
  video_frames, audio_channels, audio_frames}; splits train / dev / test; media at ROOT/<file>;
* AV-Deepfake1M (github.com/ControlNet/AV-Deepfake1M README, ``avdeepfake1m.loader``):
  ``train_metadata.json`` + ``train/``, ``val_metadata.json`` + ``val/``, ``test_files.txt`` +
  ``test/`` (no labels); entries {file, original, split, modify_type, audio_model, fake_segments,
  audio_fake_segments, visual_fake_segments, video_frames, audio_frames};
* FakeAVCeleb (DASH-Lab/FakeAVCeleb v1.2): ``meta_data.csv`` with the header
  ``source,target1,target2,method,category,type,race,gender,path,`` (``path`` = file name, the
  unnamed tenth column = directory ``FakeAVCeleb/<type>/<race>/<gender>/<id>``), race folders
  such as ``Asian (South)``, and clips listed twice under two methods, as in the release.

One test (or two) per numbered item of the issue; each failed before the fix.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from avdetect.errors import ConfigError, DataFormatError
from conftest import run_ffmpeg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------------------------------
# tiny media and the three official trees
@pytest.fixture(scope="module")
def media(tmp_path_factory) -> list[Path]:
    """Three tiny clips (1.2, 1.6 and 2.0 s, 25 fps, 16 kHz audio)."""
    d = tmp_path_factory.mktemp("media")
    out = []
    for i, dur in enumerate((1.2, 1.6, 2.0)):
        p = d / f"c{i}.mp4"
        run_ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=96x96:rate=25:duration={dur}", "-f", "lavfi", "-i",
                   f"sine=frequency={300 + 100 * i}:sample_rate=16000:duration={dur}", "-c:v", "libx264",
                   "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(p))
        out.append(p)
    return out


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)


def _lavdf_row(file, split, periods, video=False, audio=False, duration=1.6):
    return {"file": file, "n_fakes": len(periods), "fake_periods": periods, "duration": duration,
            "original": None if not periods else "train/000000.mp4", "modify_video": video, "modify_audio": audio,
            "split": split, "video_frames": int(round(duration * 25)), "audio_channels": 1,
            "audio_frames": int(round(duration * 16000))}


def lavdf_tree(root: Path, media: list[Path], rows: list[dict] | None = None) -> Path:
    rows = rows or [
        _lavdf_row("train/000001.mp4", "train", []),
        _lavdf_row("train/000002.mp4", "train", [[0.4, 0.8]], video=True),
        _lavdf_row("dev/000003.mp4", "dev", [[0.2, 0.6]], audio=True),
        _lavdf_row("dev/000004.mp4", "dev", []),
        _lavdf_row("test/000005.mp4", "test", [[0.8, 1.2]], video=True, audio=True),
        _lavdf_row("test/000006.mp4", "test", []),
    ]
    for i, r in enumerate(rows):
        _place(media[i % len(media)], root / r["file"])
    (root / "metadata.json").write_text(json.dumps(rows))
    return root


def _av1m_row(file, split, visual=(), audio=(), modify_type=None, frames=40):
    visual, audio = [list(x) for x in visual], [list(x) for x in audio]
    fake = sorted(visual + [a for a in audio if a not in visual])
    mt = modify_type or ("both_modified" if visual and audio else "visual_modified" if visual
                         else "audio_modified" if audio else "real")
    return {"file": file, "original": None if mt == "real" else file.rsplit("/", 1)[0] + "/real.mp4", "split": split,
            "modify_type": mt, "audio_model": "your_tts" if audio else "", "fake_segments": fake,
            "audio_fake_segments": audio, "visual_fake_segments": visual, "video_frames": frames,
            "audio_frames": frames * 640}


def av1m_tree(root: Path, media: list[Path], train=None, val=None, test=("000001.mp4", "000002.mp4", "000003.mp4")):
    train = train if train is not None else [
        _av1m_row("id00012/abcDEF123/00001/real.mp4", "train"),
        _av1m_row("id00012/abcDEF123/00001/fake_video_real_audio.mp4", "train", visual=[[0.4, 0.8]]),
    ]
    val = val if val is not None else [
        _av1m_row("id00034/ghiJKL456/00002/real.mp4", "val"),
        _av1m_row("id00034/ghiJKL456/00002/real_video_fake_audio.mp4", "val", audio=[[0.2, 0.6]]),
    ]
    for split, rows in (("train", train), ("val", val)):
        for i, r in enumerate(rows):
            _place(media[i % len(media)], root / split / r["file"])
        (root / f"{split}_metadata.json").write_text(json.dumps(rows))
    if test is not None:
        for i, name in enumerate(test):
            _place(media[i % len(media)], root / "test" / name)
        (root / "test_files.txt").write_text("\n".join(test) + "\n")
    return root


FAKEAVCELEB_HEADER = "source,target1,target2,method,category,type,race,gender,path,"
_LETTER = {"RealVideo-RealAudio": "A", "RealVideo-FakeAudio": "B", "FakeVideo-RealAudio": "C", "FakeVideo-FakeAudio": "D"}
_METHOD = {"RealVideo-RealAudio": "real", "RealVideo-FakeAudio": "rtvc", "FakeVideo-RealAudio": "faceswap",
           "FakeVideo-FakeAudio": "faceswap-wav2lip"}


def fakeavceleb_tree(root: Path, media: list[Path], n_subjects: int = 6) -> list[dict]:
    """FakeAVCeleb_v1.2: each subject has a real clip and one or two fakes; one fake is listed twice
    (faceswap-wav2lip, then wav2lip), as the release does for 22 clips."""
    races = ["African", "Asian (South)", "Caucasian (American)", "Asian (East)"]
    rows = []
    for s in range(n_subjects):
        race, gender, sid = races[s % 4], "men" if s % 2 else "women", f"id{s:05d}"
        clips = [("RealVideo-RealAudio", f"{s:05d}.mp4")]
        cats = ["FakeVideo-FakeAudio", "RealVideo-FakeAudio", "FakeVideo-RealAudio"]
        clips.append((cats[s % 3], f"{s:05d}_id{(s + 1) % n_subjects:05d}_wavtolip.mp4"))
        if s % 2 == 0:
            clips.append(("FakeVideo-FakeAudio", f"{s:05d}_{s}_id{(s + 2) % n_subjects:05d}_wavtolip.mp4"))
        for k, (cat, name) in enumerate(clips):
            directory = f"FakeAVCeleb/{cat}/{race}/{gender}/{sid}"
            _place(media[(s + k) % len(media)], root / cat / race / gender / sid / name)
            target1 = "-" if cat == "RealVideo-RealAudio" else f"id{(s + 1) % n_subjects:05d}"
            rows.append({"source": sid, "target1": target1, "target2": "-", "method": _METHOD[cat],
                         "category": _LETTER[cat], "type": cat, "race": race, "gender": gender, "name": name,
                         "directory": directory, "file": f"{cat}/{race}/{gender}/{sid}/{name}"})
    lines = [FAKEAVCELEB_HEADER]
    for r in rows:
        lines.append(",".join([r["source"], r["target1"], r["target2"], r["method"], r["category"], r["type"],
                               r["race"], r["gender"], r["name"], r["directory"]]))
    dup = next(r for r in rows if r["method"] == "faceswap-wav2lip")  # the release's double listing
    lines.append(",".join([dup["source"], dup["target1"], dup["target2"], "wav2lip", dup["category"], dup["type"],
                           dup["race"], dup["gender"], dup["name"], dup["directory"]]))
    (root / "meta_data.csv").write_text("\n".join(lines) + "\n")
    return rows


@pytest.fixture(scope="module")
def favc(media, tmp_path_factory):
    """A FakeAVCeleb tree, its --no-probe manifest and a cache of it."""
    from avdetect.data import build_manifest, write_manifest
    from avdetect.data.cache import preprocess

    base = tmp_path_factory.mktemp("favc")
    root = base / "FakeAVCeleb_v1.2"
    rows = fakeavceleb_tree(root, media)
    entries = build_manifest("fakeavceleb", root, probe=False)
    manifest = write_manifest(entries, base / "favc.jsonl")
    s = preprocess(entries, base / "cache", backend="opencv", quiet=True)
    assert s.failed == 0
    return root, rows, entries, manifest, base / "cache"


def _tiny_checkpoint(cache: Path, out: Path, window: int = 24) -> Path:
    import torch

    from avdetect.models import create_model

    torch.manual_seed(0)
    model = create_model("avdetect-tiny", window_frames=window)
    model.config.visual.face_backend = json.loads((cache / "cache_info.json").read_text())["backend"]
    return model.save_pretrained(out)


def _evaluate(args: list[str]) -> int:
    import torch

    from recipes.evaluate import main as evaluate_main

    threads = torch.get_num_threads()
    try:
        return evaluate_main([*args, "--device", "cpu", "--quiet"])
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------
# 1. FakeAVCeleb --no-probe: fakes must train as fakes
def test_fakeavceleb_no_probe_fakes_train_as_fake(favc, caplog):
    from avdetect.data.dataset import WindowDataset, collate_windows

    root, rows, entries, _, cache = favc
    assert all(not e.fake_segments for e in entries)  # no durations: the manifest has no segments
    labels = [e.label for e in entries]
    assert set(labels) == {0, 1}
    with caplog.at_level(logging.WARNING):
        ds = WindowDataset(entries, cache, window_frames=20, train=True, seed=0)
    batch = collate_windows([ds[i] for i in range(len(ds))])
    tg = batch["targets"]
    # the training clip labels are the manifest's (before: all 0)
    np.testing.assert_array_equal(tg.clip_label.numpy(), np.array([e.label for e in ds.entries], np.float32))
    # FakeAVCeleb fakes are whole-clip: every frame of a fake window is labelled, in its modalities
    for k, e in enumerate(ds.entries):
        n = batch["targets"].label_mask[k].sum().item()
        assert n == ds[k]["length"]
        assert tg.frame_fused[k, :n].min().item() == float(e.label)
        assert tg.frame_visual[k, :n].max().item() == float(e.modify_video)
        assert tg.frame_audio[k, :n].max().item() == float(e.modify_audio)
    fake = next(e for e in ds.entries if e.label)
    assert fake.duration and fake.fake_segments == [[0.0, fake.duration]]  # from the cache's frame count


def test_fake_without_segments_trains_at_clip_level(media, tmp_path, caplog):
    """Any other fake whose segments are unknown (a LAV-DF row with modify flags and no periods):
    clip label 1, frame labels masked, a warning; the losses stay finite."""
    import torch

    from avdetect.data import build_manifest
    from avdetect.data.cache import preprocess
    from avdetect.data.dataset import WindowDataset, collate_windows
    from avdetect.models import compute_losses, create_model

    rows = [_lavdf_row("train/000001.mp4", "train", []),
            _lavdf_row("train/000002.mp4", "train", [], video=True)]  # fake, periods missing
    with caplog.at_level(logging.WARNING):
        entries = build_manifest("lavdf", lavdf_tree(tmp_path / "LAV-DF", media, rows))
    assert [e.label for e in entries] == [0, 1]
    assert "1 of 1 fake clips have no segments" in caplog.text
    preprocess(entries, tmp_path / "cache", backend="opencv", quiet=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ds = WindowDataset(entries, tmp_path / "cache", window_frames=16, train=True)
    assert "train as fake at clip level" in caplog.text
    batch = collate_windows([ds[0], ds[1]])
    tg = batch["targets"]
    assert tg.clip_label.tolist() == [0.0, 1.0]
    assert tg.label_mask[0].any() and not tg.label_mask[1].any()
    assert tg.category.tolist() == [0, 1]  # FakeVideo-RealAudio, from the flags
    torch.manual_seed(0)
    model = create_model("avdetect-tiny", window_frames=16)
    out = model(batch["mouth"], batch["audio"], visual_mask=batch["visual_mask"], audio_mask=batch["audio_mask"])
    losses = compute_losses(out, tg, model.config.loss)
    assert all(torch.isfinite(v) for v in losses.values()) and losses["clip"] > 0


# ---------------------------------------------------------------------------------------
# 2. AV-Deepfake1M's unlabelled test set: read, predicted, written as a challenge submission
def test_av1m_test_set_predicted_into_challenge_submission(media, tmp_path):
    from avdetect.data import build_manifest, write_manifest
    from avdetect.data.cache import preprocess
    from avdetect.data.formats import read_predictions, read_scores
    from avdetect.data.manifest import LABEL_UNKNOWN, read_manifest

    root = av1m_tree(tmp_path / "AV-Deepfake1M", media)
    entries = build_manifest("av1m", root)
    test = [e for e in entries if e.split == "test"]
    assert [e.file for e in test] == ["000001.mp4", "000002.mp4", "000003.mp4"]  # before: left out
    assert all(e.label == LABEL_UNKNOWN and e.category is None and Path(e.path).is_file() for e in test)
    assert "/test/" in test[0].path
    manifest = write_manifest(entries, tmp_path / "av1m.jsonl")
    assert read_manifest(manifest, split="test") == test  # the schema round-trips unknown labels
    cache = tmp_path / "cache"
    preprocess(read_manifest(manifest, split="test"), cache, backend="opencv", quiet=True)
    ckpt = _tiny_checkpoint(cache, tmp_path / "ckpt")
    out = tmp_path / "eval_test"
    assert _evaluate(["--checkpoint", str(ckpt), "--manifest", str(manifest), "--cache", str(cache), "--split", "test",
                      "--protocol", "av1m", "--out", str(out)]) == 0
    sub = out / "submission"
    # Task 1 (classification): one 'file;score' line per test clip, as the challenge page shows
    lines = (sub / "classification.txt").read_text().splitlines()
    assert [x.split(";")[0] for x in lines] == [e.file for e in test]
    scores = read_scores(sub / "classification.txt")
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # Task 2 (localisation): {file: [[confidence, start_s, end_s], ...]}, seconds within the clip
    preds = read_predictions(sub / "localization.json")
    assert sorted(preds) == sorted(e.file for e in test)
    for e in test:
        p = preds[e.file]
        assert p.shape[1] == 3 and len(p) >= 1 and (p[:, 2] <= 2.1).all()
        assert (np.diff(p[:, 0]) <= 1e-9).all()  # ranked by confidence
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labelled"] is False and metrics["submission"]["complete"] is True
    assert not (out / "metadata.json").exists() and not (sub / "missing.txt").exists()


# ---------------------------------------------------------------------------------------
# 3. a wrong validation split name: ConfigError naming the splits, before training starts
def test_wrong_val_split_is_a_config_error_before_training(media, tmp_path, capsys):
    from avdetect.data import build_manifest, write_manifest
    from recipes.common import load_config
    from recipes.train import main as train_main, train

    manifest = write_manifest(build_manifest("lavdf", lavdf_tree(tmp_path / "LAV-DF", media)), tmp_path / "m.jsonl")
    run = tmp_path / "run"
    sets = ["model=avdetect-tiny", f"data.manifest={manifest}", f"data.cache={tmp_path / 'no_cache'}",
            "data.val_split=val", f"out_dir={run}"]
    with pytest.raises(ConfigError, match=r"data.val_split 'val': no clip of that split .* its splits are dev, test, "
                                          r"train"):
        train(load_config(REPO / "recipes" / "configs" / "lavdf.yaml", sets), quiet=True)
    assert not run.exists()  # nothing was built or written (the cache does not even exist)
    argv = ["--config", str(REPO / "recipes" / "configs" / "lavdf.yaml"), "--quiet"]
    for item in sets:
        argv += ["--set", item]
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "dev, test, train" in err
    # an explicit null is the way to train without validation
    cfg = load_config(None, [*sets[:-2], "data.val_split=null"])
    assert cfg.data.val_split is None


# ---------------------------------------------------------------------------------------
# 4. split names checked per dataset
def test_lavdf_split_names_checked(media, tmp_path, caplog):
    from avdetect.data import build_manifest

    rows = [_lavdf_row("train/000001.mp4", "train", []), _lavdf_row("dev/000002.mp4", "val", []),
            _lavdf_row("dev/000003.mp4", "Dev", [[0.2, 0.4]], video=True),
            _lavdf_row("test/000004.mp4", "testing", [])]
    root = lavdf_tree(tmp_path / "LAV-DF", media, rows)
    with caplog.at_level(logging.WARNING):
        entries = build_manifest("lavdf", root)
    assert [e.split for e in entries] == ["train", "dev", "dev", "test"]  # before: val / Dev / testing
    assert "'Dev' -> 'dev' (1 entries)" in caplog.text and "'val' -> 'dev' (1 entries)" in caplog.text
    rows[1].pop("split")  # before: split "unknown"
    (root / "metadata.json").write_text(json.dumps(rows))
    with pytest.raises(DataFormatError, match=r"1 entries have no official split, e.g. 'dev/000002.mp4' has no "
                                              r"'split'; lavdf splits are train, dev, test"):
        build_manifest("lavdf", root)
    rows[1]["split"] = "holdout"
    (root / "metadata.json").write_text(json.dumps(rows))
    with pytest.raises(DataFormatError, match="has split 'holdout'"):
        build_manifest("lavdf", root)


def test_av1m_file_decides_split_and_validation_file_mapped(media, tmp_path, caplog):
    from avdetect.data import build_manifest

    val = [_av1m_row("id00034/ghiJKL456/00002/real.mp4", "train"),  # the entry says train, the file says val
           _av1m_row("id00034/ghiJKL456/00002/real_video_fake_audio.mp4", "val", audio=[[0.2, 0.6]])]
    root = av1m_tree(tmp_path / "AV-Deepfake1M", media, val=val, test=None)
    with caplog.at_level(logging.WARNING):
        entries = build_manifest("av1m", root)
    assert {e.file: e.split for e in entries}["id00034/ghiJKL456/00002/real.mp4"] == "val"  # before: train
    assert "1 entries name another split in their 'split' field" in caplog.text
    # a validation_metadata.json (media under validation/) is read as val, with a warning
    (root / "val_metadata.json").rename(root / "validation_metadata.json")
    (root / "val").rename(root / "validation")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        entries = build_manifest("av1m", root)
    assert sorted(e.split for e in entries) == ["train", "train", "val", "val"]  # before: silently ignored
    assert "read as split 'val'" in caplog.text
    assert all(Path(e.path).is_file() for e in entries)


# ---------------------------------------------------------------------------------------
# 5. prediction units: LAV-DF's own pipeline writes frames
def test_evaluate_units_frames_and_frame_detection(tmp_path, capsys, caplog):
    from avdetect.cli import main

    meta = [_lavdf_row("test/000001.mp4", "test", [[1.0, 2.0]], video=True, duration=8.0),
            _lavdf_row("test/000002.mp4", "test", [[3.0, 4.5]], audio=True, duration=9.0),
            _lavdf_row("test/000003.mp4", "test", [], duration=7.0)]
    m = tmp_path / "metadata.json"
    m.write_text(json.dumps(meta))
    seconds = {"test/000001.mp4": [[0.9, 1.0, 2.0]], "test/000002.mp4": [[0.8, 3.0, 4.5], [0.3, 5.0, 6.0]],
               "test/000003.mp4": [[0.2, 1.0, 1.5]]}
    # BA-TFD's post_process.py multiplies begin/end by the fps: frame numbers at 25 fps
    frames = {k: [[c, s * 25, e * 25] for c, s, e in v] for k, v in seconds.items()}
    ps, pf = tmp_path / "sec.json", tmp_path / "frames.json"
    ps.write_text(json.dumps(seconds))
    pf.write_text(json.dumps(frames))

    def run(*argv):
        assert main(["evaluate", "--metadata", str(m), "--json", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    ref = run("--predictions", str(ps))
    assert ref["ap"]["0.5"] == 0.5 and ref["ar"]["100"] == 1.0 and ref["proposals_past_end"] == 0
    got = run("--predictions", str(pf), "--units", "frames", "--fps", "25")
    assert got["ap"] == ref["ap"] and got["ar"] == ref["ar"]
    with caplog.at_level(logging.WARNING):
        wrong = run("--predictions", str(pf))  # frames read as seconds: detected and named
    assert wrong["proposals_past_end"] == 3 and wrong["ar"]["100"] == 0.0
    assert "do not look like seconds" in caplog.text and "--units frames --fps 25" in caplog.text


# ---------------------------------------------------------------------------------------
# 6. AV-Deepfake1M: modify_type and the segment lists disagree
def test_av1m_modify_type_disagreement_warned(media, tmp_path, caplog):
    from avdetect.data import build_manifest

    train = [_av1m_row("id1/v/00001/real.mp4", "train"),
             _av1m_row("id1/v/00001/fake_video_real_audio.mp4", "train", visual=[[0.4, 0.8]],
                       modify_type="audio_modified"),  # says audio, the segments say visual
             _av1m_row("id1/v/00001/fake_video_fake_audio.mp4", "train", visual=[[0.4, 0.8]],
                       modify_type="both_modified")]  # says both, no audio segments
    root = av1m_tree(tmp_path / "AV-Deepfake1M", media, train=train, test=None)
    with caplog.at_level(logging.WARNING):
        entries = build_manifest("av1m", root)
    msg = [r.getMessage() for r in caplog.records if "disagree" in r.getMessage()]
    assert len(msg) == 1 and "disagree for 2 clips" in msg[0]  # before: nothing said
    assert "audio: 2, e.g. id1/v/00001/fake_video_real_audio.mp4" in msg[0] and "visual: 1" in msg[0]
    by = {e.file: e for e in entries}
    e = by["id1/v/00001/fake_video_real_audio.mp4"]
    assert e.modify_video and e.modify_audio and e.visual_segments == [[0.4, 0.8]] and e.audio_segments == []


# ---------------------------------------------------------------------------------------
# 7. FakeAVCeleb's own meta_data.csv and categories
def test_fakeavceleb_meta_data_csv_split_and_categories(favc, tmp_path, capsys, caplog):
    from avdetect.cli import main
    from avdetect.data.formats import read_metadata
    from avdetect.vocab import CATEGORIES

    root, rows, entries, manifest, cache = favc
    with caplog.at_level(logging.WARNING):
        meta = read_metadata(root / "meta_data.csv")
    assert len(meta.videos) == len(rows) and "kept once" in caplog.text  # the double listing
    split_of = {e.file: e.split for e in entries}
    assert {v.file: v.split for v in meta.videos} == split_of  # the manifest's subject-disjoint split
    assert len(entries) == len(rows)  # each file once (preprocess refuses duplicates)
    test = [e for e in entries if e.split == "test"]
    assert test and len({e.label for e in entries}) == 2
    scores = tmp_path / "scores.txt"
    scores.write_text("".join(f"{e.file};{0.9 if e.label else 0.1}\n" for e in test))
    assert main(["evaluate", "--metadata", str(root / "meta_data.csv"), "--scores", str(scores), "--split", "test",
                 "--json"]) == 0  # before: "no video of split 'test'"
    out = json.loads(capsys.readouterr().out)
    assert out["n_videos"] == len(test) and out["accuracy"] == 1.0
    assert set(out["category_accuracy"]) <= set(CATEGORIES)
    # the recipe's evaluation names FakeAVCeleb's categories as FakeAVCeleb does (before: audio_modified, ...)
    ckpt = _tiny_checkpoint(cache, tmp_path / "ckpt")
    assert _evaluate(["--checkpoint", str(ckpt), "--manifest", str(manifest), "--cache", str(cache), "--split", "all",
                      "--out", str(tmp_path / "eval"), "--no-trim"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["plain"]
    assert set(metrics["category_accuracy"]) == {e.category for e in entries}
    gt = json.loads((tmp_path / "eval" / "metadata.json").read_text())
    assert all(g["fake_segments"] for g in gt if g["modify_type"] != "real")  # whole-clip truth from the cache


# ---------------------------------------------------------------------------------------
# 8. configs, validation sample, learning rate, cache size
def test_configs_per_dataset_windows_and_smoke_runs():
    from recipes.common import load_config

    d = REPO / "recipes" / "configs"
    real = {n: load_config(d / f"{n}.yaml") for n in ("lavdf", "av1m", "fakeavceleb")}
    smoke = {n: load_config(d / f"{n}.yaml", smoke=True) for n in real}
    win = {n: c.model_overrides.get("window_frames") for n, c in real.items()}
    assert all(win.values()) and len(set(win.values())) == 3  # one window per dataset (before: 512 for all)
    assert win["fakeavceleb"] * 0.04 <= 6.0  # FakeAVCeleb clips average 5.5 s
    for n, c in smoke.items():
        w = c.model_overrides.get("window_frames", 512)
        # what recipes/README.md measured to fit a 24 GB CPU machine for avdetect-base
        assert c.model == real[n].model == "avdetect-base" and w * c.optim.batch_size <= 128, n
        assert c.device == "cpu" and c.optim.max_steps <= 50 and c.data.max_val_clips
        assert c.optim.scale_lr == real[n].optim.scale_lr == "linear"
    with pytest.raises(ConfigError, match="no 'smoke' section"):
        load_config(None, [], smoke=True)


def test_validation_sample_seeded_and_stratified():
    from avdetect.data.manifest import ManifestEntry, sample_entries

    def e(i, label, cat):
        return ManifestEntry(file=f"{i:03d}.mp4", path=f"/x/{i:03d}.mp4", dataset="lavdf", split="dev", label=label,
                             category=cat, modify_video=label == 1, modify_audio=False)

    # file order: 60 reals first, then 30 fakes of one kind and 10 of another
    pool = ([e(i, 0, "RealVideo-RealAudio") for i in range(60)] + [e(60 + i, 1, "FakeVideo-RealAudio") for i in range(30)]
            + [e(90 + i, 1, "FakeVideo-FakeAudio") for i in range(10)])
    a = sample_entries(pool, 20, seed=0)
    assert a == sample_entries(pool, 20, seed=0) and a != sample_entries(pool, 20, seed=1)
    assert a != pool[:20]  # before: the first 20 in file order (all real)
    cats = [x.category for x in a]
    assert (cats.count("RealVideo-RealAudio"), cats.count("FakeVideo-RealAudio"), cats.count("FakeVideo-FakeAudio")) \
        == (12, 6, 2)
    assert [x.file for x in a] == sorted(x.file for x in a)  # manifest order kept
    assert {x.label for x in sample_entries(pool, 2, seed=3)} == {0, 1}
    assert sample_entries(pool, None) == pool and sample_entries(pool, 500) == pool


def test_learning_rate_scaled_with_world_size():
    from recipes.common import OptimConfig
    from recipes.train import lr_at, scaled_lr

    o = OptimConfig(lr=2e-4, scale_lr="linear", reference_world_size=4, warmup_steps=0)
    assert scaled_lr(o, 4) == pytest.approx(2e-4) and scaled_lr(o, 8) == pytest.approx(4e-4)
    assert scaled_lr(o, 1) == pytest.approx(5e-5)
    assert scaled_lr(OptimConfig(lr=2e-4, scale_lr="sqrt", reference_world_size=1), 4) == pytest.approx(4e-4)
    assert scaled_lr(OptimConfig(lr=2e-4), 8) == pytest.approx(2e-4)  # "none": as written
    import dataclasses

    assert lr_at(0, dataclasses.replace(o, lr=scaled_lr(o, 8))) == pytest.approx(4e-4)
    with pytest.raises(ConfigError, match="scale_lr"):
        scaled_lr(OptimConfig(scale_lr="cubic"), 2)


def test_cache_webp_lossless_smaller_and_old_caches_readable(media, tmp_path):
    from avdetect.data import build_manifest
    from avdetect.data.cache import FeatureCache, preprocess, shard_relpath

    entries = build_manifest("lavdf", lavdf_tree(tmp_path / "LAV-DF", media))[:2]
    raw, webp = tmp_path / "raw", tmp_path / "webp"
    preprocess(entries, raw, faces=True, crop_codec="raw", backend="opencv", quiet=True)
    preprocess(entries, webp, faces=True, backend="opencv", quiet=True)  # the default for a new cache
    assert json.loads((webp / "cache_info.json").read_text())["crop_codec"] == "webp"
    a, b = FeatureCache(raw), FeatureCache(webp)
    for e in entries:
        x, y = a.read(e.file), b.read(e.file)
        np.testing.assert_array_equal(x.mouth, y.mouth)  # what training reads is unchanged
        np.testing.assert_array_equal(x.face, y.face)
        np.testing.assert_array_equal(a.read(e.file, 5, 17).face, b.read(e.file, 5, 17).face)
    size = {d: sum((d / shard_relpath(e.file)).stat().st_size for e in entries) for d in (raw, webp)}
    assert size[webp] < 0.6 * size[raw]
    # a cache written before (format 1: no crop_codec recorded) is read, and resumed as it is
    info = json.loads((raw / "cache_info.json").read_text())
    info.pop("crop_codec")
    info["format"] = 1
    (raw / "cache_info.json").write_text(json.dumps(info))
    more = build_manifest("lavdf", tmp_path / "LAV-DF")[2:3]
    preprocess(entries + more, raw, faces=True, backend="opencv", quiet=True)
    c = FeatureCache(raw)
    assert c.read(more[0].file).mouth.shape[1:] == (96, 96, 3)
    from safetensors import safe_open

    with safe_open(str(raw / shard_relpath(more[0].file)), framework="numpy") as fh:
        assert "mouth" in fh.keys()  # still raw arrays: a cache is never mixed
    with pytest.raises(DataFormatError, match="crop_codec=raw \\(now webp\\)"):
        preprocess(entries, raw, faces=True, crop_codec="webp", backend="opencv", quiet=True)
    info["format"] = 9
    (raw / "cache_info.json").write_text(json.dumps(info))
    with pytest.raises(DataFormatError, match="cache format 9 .* update avdetect"):
        FeatureCache(raw)
