"""The command line as a user runs it: a real subprocess, exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_ffmpeg

ROOT = Path(__file__).resolve().parents[1]


def avdetect(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "avdetect", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cli") / "clip.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-f", "lavfi", "-i",
               "sine=frequency=440:sample_rate=44100:duration=2", "-c:v", "libx264", "-c:a", "aac", "-shortest", str(p))
    return p


def test_version():
    r = avdetect("--version")
    assert r.returncode == 0 and r.stdout.startswith("avdetect ")


def test_probe_text(clip):
    r = avdetect("probe", str(clip))
    assert r.returncode == 0, r.stderr
    assert "clip.mp4" in r.stdout and "h264 320x240" in r.stdout and "50 frames at 25 fps" in r.stdout
    assert "coverage" in r.stdout and "Traceback" not in r.stderr


def test_probe_json(clip):
    r = avdetect("probe", "--json", str(clip))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["video"]["n_frames"] == 50 and d["audio"]["n_samples"] == 32000
    assert d["has_audio"] and d["has_video"] and len(d["sha256"]) == 64
    assert 0.0 <= d["faces"]["coverage"] <= 1.0
    assert d["timing_s"]["total"] > 0


@pytest.mark.parametrize(
    "name,content,needle",
    [("missing.mp4", None, "no such file"), ("empty.mp4", b"", "empty file"), ("notes.mp4", b"just some text\n" * 50, "not an audio or video file")],
)
def test_probe_bad_input_is_one_line(tmp_path, name, content, needle):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    r = avdetect("probe", str(p))
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and needle in lines[0]
    assert "Traceback" not in r.stderr


def test_probe_keeps_going_after_a_bad_file(tmp_path, clip):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    r = avdetect("probe", "--json", str(bad), str(clip))
    assert r.returncode == 2  # something failed ...
    out = json.loads(r.stdout)
    assert len(out) == 1 and out[0]["file"].endswith("clip.mp4")  # ... and the good file is reported
    assert "bad.mp4" in r.stderr


def test_detect_rejects_broken_files_before_loading_the_model(tmp_path):
    empty, trunc = tmp_path / "empty.mp4", tmp_path / "trunc.mp4"
    empty.write_bytes(b"")
    trunc.write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 4000)  # the first 4 KB of an mp4, no more
    # a checkpoint that does not exist: had the model been loaded first, its error would be the one shown
    r = avdetect("detect", str(empty), str(trunc), "--checkpoint", str(tmp_path / "no-such-checkpoint"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and "empty.mp4" in lines[0] and "trunc.mp4" in lines[1], lines
    assert "checkpoint" not in r.stderr


@pytest.mark.parametrize("target, several, needle", [
    ("{tmp}", False, "is a folder; give a file name"),
    ("{tmp}/afile/r.json", False, "is a file, not a folder"),
    ("{tmp}/afile", True, "must be a folder when several files are given"),
    ("/proc/avdetect-test/r.json", False, "cannot create files in this folder"),
])
def test_detect_refuses_unwritable_report_targets_before_detecting(tmp_path, clip, target, several, needle):
    (tmp_path / "afile").write_text("x")
    files = [str(clip), str(clip)] if several else [str(clip)]
    # a missing checkpoint: the target is checked before the model would load
    r = avdetect("detect", *files, "--json", target.format(tmp=tmp_path), "--checkpoint", str(tmp_path / "none"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines


def test_no_command_prints_help():
    r = avdetect()
    assert r.returncode == 2 and "usage" in r.stderr.lower()


def test_internal_error_is_one_line(monkeypatch, capsys):
    """An unexpected exception becomes one line (no traceback) and exit 1."""
    from avdetect import cli

    def boom(args):
        raise RuntimeError("something broke")

    monkeypatch.setitem(cli.COMMANDS, "probe", (cli._args_probe, boom, "x"))
    assert cli.main(["probe", "x.mp4"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: something broke" in err and "Traceback" not in err
