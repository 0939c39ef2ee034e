"""Manifests on fake-format copies of each benchmark's layout, the preprocessing cache (round trip,
resume), windows and targets, and the training recipe (2-process torchrun, resume)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avdetect.data import build_manifest, read_manifest, write_manifest
from avdetect.data.cache import FeatureCache, preprocess, shard_relpath
from avdetect.data.manifest import ManifestEntry, fakeavceleb_split
from avdetect.errors import DataFormatError
from avdetect.timegrid import SAMPLES_PER_FRAME

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """Six short synthetic clips in `avdetect synth` layout (LAV-DF + AV-Deepfake1M metadata)."""
    from avdetect.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, n=6, seed=3, size=128, min_duration=1.6, max_duration=2.0, splits=(0.5, 0.25, 0.25),
             real_share=0.3)
    return out


def _clips(synth_dir: Path) -> list[dict]:
    return json.loads((synth_dir / "metadata.json").read_text())


# ---------------------------------------------------------------------------------------
# manifests
def test_manifest_synthetic_matches_generator(synth_dir, tmp_path):
    entries = build_manifest("synthetic", synth_dir)
    lavdf = {d["file"]: d for d in _clips(synth_dir)}
    assert [e.file for e in entries] == list(lavdf)
    info = {d["file"]: d for d in json.loads((synth_dir / "synth_info.json").read_text())["clips"]}
    for e in entries:
        d, t = lavdf[e.file], info[e.file]
        assert e.split == d["split"] and e.dataset == "synthetic"
        assert e.duration == pytest.approx(d["duration"])
        np.testing.assert_allclose(np.reshape(e.fake_segments, (-1, 2)), np.reshape(d["fake_periods"], (-1, 2)))
        assert e.visual_segments == (t["visual_fake_segments"] or [])
        assert e.audio_segments == (t["audio_fake_segments"] or [])
        assert e.label == int(bool(d["fake_periods"]))
        assert Path(e.path).is_file()
    path = write_manifest(entries, tmp_path / "m.jsonl")
    assert read_manifest(path) == entries
    assert {e.split for e in read_manifest(path, split="train")} == {"train"}


def test_manifest_synthetic_with_empty_splits(synth_dir, tmp_path):
    """A test-only set (``--split 0,0,1``) has empty train/val split files: they are skipped."""
    root = tmp_path / "only_test"
    shutil.copytree(synth_dir, root)
    entries = build_manifest("synthetic", root)
    for name in ("train_metadata.json", "val_metadata.json"):
        (root / name).write_text("[]")
    kept = [e for e in entries if e.split == "test"]
    meta = json.loads((root / "metadata.json").read_text())
    (root / "metadata.json").write_text(json.dumps([m for m in meta if m["split"] == "test"]))
    got = build_manifest("synthetic", root)
    assert [e.file for e in got] == [e.file for e in kept] and got


def test_manifest_lavdf_layout(synth_dir, tmp_path):
    root = tmp_path / "LAV-DF"
    meta = _clips(synth_dir)
    for d in meta:
        (root / d["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_dir / d["file"], root / d["file"])
    meta[0]["modify_audio"], meta[0]["modify_video"] = True, False  # LAV-DF flags decide the modality
    meta[0]["fake_periods"] = [[0.2, 0.6]]
    (root / "metadata.json").write_text(json.dumps(meta))
    entries = build_manifest("lavdf", root)
    assert len(entries) == len(meta)
    e = entries[0]
    assert e.audio_segments == [[0.2, 0.6]] and e.visual_segments == [] and e.category == "RealVideo-FakeAudio"
    os.remove(root / meta[1]["file"])  # a listed file that is missing is left out
    assert len(build_manifest("lavdf", root)) == len(meta) - 1


def test_manifest_av1m_layout(synth_dir, tmp_path):
    root = tmp_path / "AV-Deepfake1M"
    src = _clips(synth_dir)
    rows = {"train": [], "val": []}
    for i, d in enumerate(src):
        split = "train" if i % 2 == 0 else "val"
        key = f"lrs3/id{i:03d}/clip{i}.mp4"
        (root / split / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_dir / d["file"], root / split / key)
        vis = [[0.4, 0.8]] if i % 3 == 1 else []
        aud = [[1.0, 1.2]] if i % 3 == 2 else []
        rows[split].append({"file": key, "original": None, "split": split,
                            "modify_type": "visual_modified" if vis else "audio_modified" if aud else "real",
                            "audio_model": "", "fake_segments": vis + aud, "audio_fake_segments": aud,
                            "visual_fake_segments": vis, "video_frames": 45, "audio_frames": 28800})
    for split, r in rows.items():
        (root / f"{split}_metadata.json").write_text(json.dumps(r))
    entries = build_manifest("av1m", root)
    assert len(entries) == len(src)
    by = {e.file: e for e in entries}
    assert by["lrs3/id001/clip1.mp4"].visual_segments == [[0.4, 0.8]]
    assert by["lrs3/id001/clip1.mp4"].split == "val" and by["lrs3/id001/clip1.mp4"].label == 1
    assert by["lrs3/id002/clip2.mp4"].category == "RealVideo-FakeAudio"
    assert by["lrs3/id000/clip0.mp4"].label == 0 and by["lrs3/id000/clip0.mp4"].duration == pytest.approx(1.8)
    assert all(Path(e.path).is_file() and f"/{e.split}/" in e.path for e in entries)


def _fakeavceleb(synth_dir: Path, root: Path, n_subjects: int = 6) -> list[tuple[str, str]]:
    cats = ["RealVideo-RealAudio", "RealVideo-FakeAudio", "FakeVideo-RealAudio", "FakeVideo-FakeAudio"]
    src = [synth_dir / d["file"] for d in _clips(synth_dir)]
    rows = []
    for s in range(n_subjects):
        for k, cat in enumerate(cats[: 1 + s % 4]):
            rel = f"{cat}/African/men/id{s:05d}"
            name = f"{s:05d}_{k}.mp4"
            (root / rel).mkdir(parents=True, exist_ok=True)
            shutil.copy(src[(s + k) % len(src)], root / rel / name)
            rows.append((rel, name, cat))
    # the real file: 9 header names, 10 values per row (file name, then directory)
    lines = ["source,target1,target2,method,category,type,race,gender,path"]
    for rel, name, cat in rows:
        lines.append(f"id{rel[-5:]},-,-,{'real' if cat.startswith('RealVideo-Real') else 'fsgan'},A,{cat},African,men,"
                     f"{name},FakeAVCeleb/{rel}")
    (root / "meta_data.csv").write_text("\n".join(lines) + "\n")
    return [(f"{rel}/{name}", cat) for rel, name, cat in rows]


def test_manifest_fakeavceleb_layout(synth_dir, tmp_path):
    root = tmp_path / "FakeAVCeleb_v1.2"
    rows = _fakeavceleb(synth_dir, root)
    entries = build_manifest("fakeavceleb", root, workers=2)
    assert sorted(e.file for e in entries) == sorted(f for f, _ in rows)
    by = {e.file: e for e in entries}
    for f, cat in rows:
        e = by[f]
        assert e.category == cat and e.subject == f.split("/")[3]
        assert e.modify_video == cat.startswith("FakeVideo") and e.modify_audio == cat.endswith("FakeAudio")
        assert e.duration and e.duration > 1.0
        if e.label:
            assert e.fake_segments == [[0.0, e.duration]]
    # subject-disjoint, deterministic
    split_of: dict[str, set] = {}
    for e in entries:
        split_of.setdefault(e.subject, set()).add(e.split)
    assert all(len(s) == 1 for s in split_of.values())
    assert fakeavceleb_split(list(split_of)) == fakeavceleb_split(list(reversed(list(split_of))))
    # the folder tree alone (no CSV) gives the same clips
    os.remove(root / "meta_data.csv")
    assert sorted(e.file for e in build_manifest("fakeavceleb", root, probe=False)) == sorted(by)


def test_manifest_errors(tmp_path):
    assert len(read_manifest(REPO / "data_manifests" / "example.jsonl")) == 3  # the documented example parses
    with pytest.raises(DataFormatError, match="metadata"):
        build_manifest("av1m", tmp_path)
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"file": "a"}\n')
    with pytest.raises(DataFormatError, match="line 1"):
        read_manifest(bad)


def test_cli_manifest(synth_dir, tmp_path):
    out = tmp_path / "s.jsonl"
    r = subprocess.run([sys.executable, "-m", "avdetect", "manifest", "synthetic", str(synth_dir), "--out", str(out)],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(read_manifest(out)) == 6


# ---------------------------------------------------------------------------------------
# preprocessing cache
@pytest.fixture(scope="module")
def cache_dir(synth_dir, tmp_path_factory) -> tuple[list[ManifestEntry], Path]:
    entries = build_manifest("synthetic", synth_dir)
    out = tmp_path_factory.mktemp("cache")
    s = preprocess(entries, out, quiet=True)
    assert s.processed == len(entries) and s.failed == 0
    return entries, out


def test_cache_round_trip(cache_dir):
    from avdetect.faces import track_faces
    from avdetect.media import load_media

    entries, out = cache_dir
    cache = FeatureCache(out)
    e = entries[0]
    media = load_media(e.path)
    track = track_faces(media)
    rec = cache.records[e.file]
    assert rec.n_frames == len(track.valid) and rec.has_audio and rec.has_video
    w = cache.read(e.file)
    np.testing.assert_array_equal(w.mouth, track.mouth)
    np.testing.assert_array_equal(w.valid, track.valid)
    assert w.face is None  # faces=False by default
    audio = media.audio[: rec.n_frames * SAMPLES_PER_FRAME]
    np.testing.assert_allclose(w.audio[: len(audio)], audio, atol=1.0 / 32767 + 1e-7)
    # a window is the same slice of the whole
    part = cache.read(e.file, 5, 15)
    np.testing.assert_array_equal(part.mouth, track.mouth[5:15])
    np.testing.assert_array_equal(part.audio, w.audio[5 * SAMPLES_PER_FRAME:15 * SAMPLES_PER_FRAME])
    # audio delayed by 3 frames: zeros first, then the clip's audio from frame 2
    shifted = cache.read(e.file, 5, 15, audio_shift=3)
    np.testing.assert_array_equal(shifted.audio, w.audio[2 * SAMPLES_PER_FRAME:12 * SAMPLES_PER_FRAME])
    early = cache.read(e.file, 0, 10, audio_shift=3)
    assert not early.has_audio_frames[:3].any() and early.has_audio_frames[3:].all()
    assert not early.audio[: 3 * SAMPLES_PER_FRAME].any()


def test_preprocess_resume_after_interrupt(synth_dir, tmp_path, monkeypatch):
    import avdetect.data.cache as cache_mod

    entries = build_manifest("synthetic", synth_dir)
    bad = ManifestEntry(file="broken.mp4", path=str(tmp_path / "broken.mp4"), dataset="synthetic", split="train",
                        label=0, category="RealVideo-RealAudio", modify_video=False, modify_audio=False)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    entries = [entries[0], bad, *entries[1:]]
    out = tmp_path / "cache"
    real = cache_mod.process_clip
    calls = []

    def interrupted(entry, *a, **k):
        calls.append(entry.file)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the user kills the run in the middle of the 4th clip
        return real(entry, *a, **k)

    monkeypatch.setattr(cache_mod, "process_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        preprocess(entries, out, quiet=True)
    index = [json.loads(x) for x in (out / "index.jsonl").read_text().splitlines()]
    assert [d["file"] for d in index] == [entries[0].file, entries[2].file]
    fails = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["file"] for f in fails] == ["broken.mp4"] and "broken.mp4" in fails[0]["error"]
    # a shard renamed into place just before the kill, without its index line, is picked up, not redone
    real(entries[3], out)
    done_shard = out / shard_relpath(entries[3].file)
    mtime = done_shard.stat().st_mtime_ns
    (out / "clips" / "junk.99.tmp").write_bytes(b"half")  # half-written temp files are never read

    calls.clear()
    s = preprocess(entries, out, quiet=True)
    assert sorted(calls) == sorted(e.file for e in entries[4:])  # neither done clips nor the known failure
    assert s.done_before == 4 and s.processed == len(entries) - 4 and s.failed == 0
    assert done_shard.stat().st_mtime_ns == mtime
    cache = FeatureCache(out)
    assert set(cache.records) == {e.file for e in entries} - {"broken.mp4"}
    assert "broken.mp4" in cache.failures


def test_cache_records_and_checks_decode_and_crop_sizes(cache_dir, tmp_path):
    from avdetect.data.dataset import WindowDataset
    from avdetect.models import model_config
    from avdetect.vocab import DECODE_MAX_SIDE, FACE_SIZE, MOUTH_SIZE

    entries, out = cache_dir
    info = json.loads((out / "cache_info.json").read_text())
    assert (info["max_side"], info["mouth_size"], info["face_size"]) == (DECODE_MAX_SIDE, MOUTH_SIZE, FACE_SIZE)
    cfg = model_config("avdetect-tiny")
    cfg.visual.face_backend = info["backend"]  # what "auto" resolved to, recorded by preprocess
    ok = FeatureCache(out, max_side=DECODE_MAX_SIDE, model_config=cfg)
    assert (ok.max_side, ok.mouth_size, ok.face_size) == (DECODE_MAX_SIDE, MOUTH_SIZE, FACE_SIZE)
    # a model whose crops come from another face backend is refused, naming both
    other = model_config("avdetect-tiny")
    other.visual.face_backend = "face-alignment"
    with pytest.raises(DataFormatError, match=rf"tracked with {info['backend']}, the model's crops come from face-alignment"):
        FeatureCache(out, model_config=other)
    # another decode size than the cache's: a typed error naming both, at open and on resume
    with pytest.raises(DataFormatError, match=rf"max_side={DECODE_MAX_SIDE}.*max_side=320"):
        FeatureCache(out, max_side=320)
    with pytest.raises(DataFormatError, match=rf"max_side={DECODE_MAX_SIDE} \(now 320\)"):
        preprocess(entries, out, max_side=320, quiet=True)
    # a model that takes other crop sizes: named at open, for a dataset, not a shape error later
    small = model_config("avdetect-tiny", visual={"input_mouth_size": 64, "face_backend": info["backend"]})
    with pytest.raises(DataFormatError, match=rf"mouth crops are {MOUTH_SIZE} px.*input_mouth_size=64"):
        FeatureCache(out, model_config=small)
    with pytest.raises(DataFormatError, match="input_mouth_size=64"):
        WindowDataset(entries, out, window_frames=20, train=False, model_config=small)
    # face size is checked for models that use faces, on caches that have them
    faces = model_config("avdetect-tiny", visual={"use_face": True, "input_face_size": 100,
                                                  "face_backend": info["backend"]})
    FeatureCache(out, model_config=faces)  # this cache has no face crops: use_face is refused elsewhere
    # a cache written before the sizes were recorded means the fixed sizes of then
    legacy = tmp_path / "legacy"
    shutil.copytree(out, legacy)
    old = {k: v for k, v in info.items() if k not in ("mouth_size", "face_size")}
    (legacy / "cache_info.json").write_text(json.dumps(old))
    assert FeatureCache(legacy, model_config=cfg).mouth_size == 96
    (legacy / "cache_info.json").write_text(json.dumps({**info, "faces": True}))
    with pytest.raises(DataFormatError, match=rf"face crops are {FACE_SIZE} px.*input_face_size=100"):
        FeatureCache(legacy, model_config=faces)
    # shards whose crops disagree with cache_info.json are refused on read
    (legacy / "cache_info.json").write_text(json.dumps({**info, "mouth_size": 64}))
    lied = FeatureCache(legacy)
    with pytest.raises(DataFormatError, match=rf"{MOUTH_SIZE}x{MOUTH_SIZE} px, but cache_info.json says 64"):
        lied.read(entries[0].file, 0, 5)


# ---------------------------------------------------------------------------------------
# windows, targets, sampler
def test_windows_and_targets(cache_dir):
    import torch

    from avdetect.data.dataset import AugmentConfig, EpochSampler, WindowDataset, collate_windows

    entries, out = cache_dir
    fake = next(e for e in entries if e.visual_segments and e.fake_segments[0][0] > 0)
    ds = WindowDataset([fake], out, window_frames=30, train=False, eval_overlap=10)
    n = ds.n_frames(0)
    assert ds.tiles[0] == (0, 0) and ds.tiles[-1][1] == n - 30
    batch = collate_windows([ds[i] for i in range(len(ds))])
    assert batch["mouth"].shape == (len(ds), 30, 3, 96, 96) and batch["mouth"].dtype == torch.uint8
    assert batch["audio"].shape == (len(ds), 30 * SAMPLES_PER_FRAME)
    # frame labels of the stitched windows reproduce the manifest segments
    labels = np.zeros(n)
    for k, (_, start) in enumerate(ds.tiles):
        labels[start:start + 30] = batch["targets"].frame_visual[k].numpy()
    want = np.zeros(n)
    for s, e in fake.visual_segments:
        want[round(s * 25):round(e * 25)] = 1
    np.testing.assert_array_equal(labels, want)

    long = WindowDataset(entries, out, window_frames=80, train=True, augment=AugmentConfig(av_shift_prob=1.0), seed=1)
    item = long[0]
    assert item["length"] == long.n_frames(0) < 80 and not item["visual_mask"][item["length"]:].any()
    assert item["sync_offset"] != 0
    again = long[0]
    np.testing.assert_array_equal(item["mouth"], again["mouth"])  # seeded by (seed, epoch, index)
    b = collate_windows([long[i] for i in range(3)])
    assert b["targets"].sync_offset.abs().min() >= 1 and b["targets"].label_mask.shape == (3, 80)

    labels = [0] * 10 + [1] * 90
    s0 = EpochSampler(labels, balanced=True, rank=0, world=2, seed=0)
    s1 = EpochSampler(labels, balanced=True, rank=1, world=2, seed=0)
    a, b2 = list(s0), list(s1)
    assert len(a) == len(b2) == 50
    both = np.array(a + b2)
    assert 0.3 < np.mean(both < 10) < 0.7  # the rare class is drawn about half the time
    s0.set_epoch(0, skip=20)
    assert list(s0) == a[20:]


# ---------------------------------------------------------------------------------------
# training recipe
def _train_cmd(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            str(REPO / "recipes" / "train.py"), "--quiet", *args]


def test_torchrun_two_processes_then_resume(cache_dir, tmp_path):
    from avdetect.models import AVDetector

    entries, out = cache_dir
    manifest = write_manifest(entries, tmp_path / "m.jsonl")
    run = tmp_path / "run"
    common = ["--set", "model=avdetect-tiny", "--set", "model_overrides.window_frames=24",
              "--set", f"data.manifest={manifest}", "--set", f"data.cache={out}", "--set", "data.val_split=dev",
              "--set", "optim.batch_size=1", "--set", "optim.warmup_steps=1", "--set", "val_every=100",
              "--set", "ckpt_every=1", "--set", "data.max_val_clips=2", "--set", "threads=1", "--set", f"out_dir={run}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run(_train_cmd(2, *common, "--set", "optim.max_steps=2"), capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "latest.json").read_text())["step"] == 2
    model = AVDetector.from_pretrained(run / "checkpoints" / "step_0000002")
    assert model.config.window_frames == 24 and model.config.name == "avdetect-tiny"
    assert (run / "best" / "model.safetensors").is_file() and (run / "val_log.csv").is_file()
    header, *rows = (run / "train_log.csv").read_text().splitlines()
    assert "windows_per_s" in header and rows
    state = json.loads((run / "checkpoints" / "step_0000002" / "training_state.json").read_text())
    assert state["step"] == 2 and state["world_size"] == 2

    # resume in-process (a third interpreter start would double the test's time on a loaded machine)
    sys.path.insert(0, str(REPO))
    from recipes.common import load_config
    from recipes.train import train

    import torch

    cfg = load_config(run / "config.yaml", ["optim.max_steps=4"])
    threads = torch.get_num_threads()
    try:
        result = train(cfg, resume=str(run), quiet=True)
    finally:
        torch.set_num_threads(threads)
    assert result["step"] == 4
    steps = [int(x.split(",")[0]) for x in (run / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == [2, 4]  # logged at the end of each run: 2 before, 4 after resuming from step 2
    assert json.loads((run / "latest.json").read_text())["step"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000003", "step_0000004"]  # keep_last=2


def test_evaluate_recipe_writes_metrics_and_calibration(cache_dir, tmp_path):
    """recipes/evaluate.py on every cached clip: predictions in challenge format, metrics that the
    CLI scorer reproduces, and --write-calibration's EER threshold, which Detector then uses."""
    sys.path.insert(0, str(REPO))
    import torch

    from recipes.evaluate import main as evaluate_main

    from avdetect.api import Detector
    from avdetect.checkpoints import read_calibration
    from avdetect.models import create_model

    entries, out = cache_dir
    assert {e.label for e in entries} == {0, 1}
    manifest = write_manifest(entries, tmp_path / "m.jsonl")
    torch.manual_seed(0)
    model = create_model("avdetect-tiny", window_frames=24)
    model.config.visual.face_backend = json.loads((out / "cache_info.json").read_text())["backend"]
    ckpt = model.save_pretrained(tmp_path / "ckpt")
    (ckpt / "calibration.json").write_text(json.dumps({"threshold": 0.5, "method": "x", "warning": "synthetic only"}))
    res_dir = tmp_path / "eval"
    threads = torch.get_num_threads()
    try:
        rc = evaluate_main(["--checkpoint", str(ckpt), "--manifest", str(manifest), "--cache", str(out), "--split", "all",
                            "--out", str(res_dir), "--device", "cpu", "--quiet", "--no-trim", "--write-calibration"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    preds = json.loads((res_dir / "predictions.json").read_text())
    assert sorted(preds) == sorted(e.file for e in entries) and all(len(v) >= 1 and len(v[0]) == 3 for v in preds.values())
    metrics = json.loads((res_dir / "metrics.json").read_text())
    plain = metrics["plain"]
    from avdetect.evaluation import evaluate_files

    again = evaluate_files(res_dir / "metadata.json", predictions_path=res_dir / "predictions.json",
                           scores_path=res_dir / "scores.txt", protocol="lavdf")
    assert {str(k): v for k, v in again["ap"].items()} == plain["ap"] and again["eer_threshold"] == pytest.approx(plain["eer_threshold"])
    cal = read_calibration(ckpt)
    assert cal["threshold"] == pytest.approx(min(0.99, max(0.01, plain["eer_threshold"])), abs=1e-4)
    assert "equal-error-rate" in cal["method"] and cal["warning"] == "synthetic only"  # the caveat is kept
    assert Detector.from_pretrained(ckpt, device="cpu").options.threshold == cal["threshold"]

    # a split without real clips cannot be calibrated: one line, exit 2, nothing overwritten
    fakes = write_manifest([e for e in entries if e.label], tmp_path / "fakes.jsonl")
    before = (ckpt / "calibration.json").read_text()
    assert evaluate_main(["--checkpoint", str(ckpt), "--manifest", str(fakes), "--cache", str(out), "--split", "all",
                          "--out", str(tmp_path / "eval2"), "--device", "cpu", "--quiet", "--no-trim",
                          "--write-calibration"]) == 2
    assert (ckpt / "calibration.json").read_text() == before


def test_lr_schedule_and_config_errors(tmp_path):
    sys.path.insert(0, str(REPO))
    from recipes.common import OptimConfig, load_config
    from recipes.train import lr_at

    from avdetect.errors import ConfigError

    o = OptimConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, o) == pytest.approx(0.1) and lr_at(9, o) == pytest.approx(1.0)
    assert lr_at(60, o) == pytest.approx(0.55) and lr_at(110, o) == pytest.approx(0.1)
    for name in ("synthetic", "lavdf", "fakeavceleb", "av1m"):
        cfg = load_config(REPO / "recipes" / "configs" / f"{name}.yaml")
        assert cfg.data.manifest.endswith(".jsonl")
    cfg = load_config(REPO / "recipes" / "configs" / "synthetic.yaml", ["optim.lr=0.5", "augment.crop_jitter=0"])
    assert cfg.optim.lr == 0.5 and cfg.augment.crop_jitter == 0 and cfg.model == "avdetect-small"
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(None, ["optim.lrr=1"])


def test_cache_refuses_landmark_crops_of_another_crop_rule(cache_dir, tmp_path):
    from avdetect.vocab import CROP_RULE

    entries, out = cache_dir
    info = json.loads((out / "cache_info.json").read_text())
    assert info["crop_rule"] == CROP_RULE
    FeatureCache(out)  # this avdetect's own cache opens
    old = tmp_path / "old_landmarks"
    shutil.copytree(out, old)
    legacy = {k: v for k, v in info.items() if k != "crop_rule"}  # written before the rule was recorded
    (old / "cache_info.json").write_text(json.dumps({**legacy, "backend": "mediapipe"}))
    with pytest.raises(DataFormatError, match="mediapipe crops follow crop rule 1 .axis-aligned., this avdetect makes rule 2"):
        FeatureCache(old)
    from avdetect.faces import backend_available

    if backend_available("mediapipe"):  # resuming it with this avdetect is refused too
        with pytest.raises(DataFormatError, match="crop rule 1"):
            preprocess(entries, old, backend="mediapipe", quiet=True)
    (old / "cache_info.json").write_text(json.dumps({**legacy, "backend": "opencv"}))  # Haar crops: the same under both
    FeatureCache(old)
