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


def avdetect_bounded(*args: str, timeout: float = 60, memory_gb: float = 4) -> subprocess.CompletedProcess:
    """The CLI under a time limit and an address-space limit: a command that blocks on a FIFO
    or reads a device into memory fails this test in seconds instead of hanging it or eating
    the machine (``--out /dev/full`` once grew a scan to 21 GB)."""
    import resource

    limit = int(memory_gb * 2**30)

    def bound():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "avdetect", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, preexec_fn=bound, check=False)


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        return tmp_path / "fifo"
    if kind == "folder":
        (tmp_path / "folder").mkdir()
        return tmp_path / "folder"
    if not Path(kind).exists():
        pytest.skip(f"{kind} is not on this system")
    return Path(kind)


@pytest.mark.parametrize("kind, needle", [
    ("/dev/full", "is a character device, not a regular file"),
    ("/dev/zero", "is a character device, not a regular file"),
    ("fifo", "is a named pipe (FIFO), not a regular file"),
    ("folder", "is a folder; give a file name"),
])
def test_scan_refuses_a_results_file_that_is_not_a_regular_file(tmp_path, clip, kind, needle):
    """``scan --out /dev/full`` read the device into memory (the resume step) until the kernel
    killed it; a FIFO blocked forever. Now: one line, exit 2, before any file or model is read."""
    target = _special(tmp_path, kind)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clip.mp4").symlink_to(clip)
    lock = Path(f"{target}.lock")
    had_lock = lock.exists()
    try:
        r = avdetect_bounded("scan", str(tmp_path / "in"), "--out", str(target), "--checkpoint", str(tmp_path / "none"))
    finally:
        made_lock = not had_lock and lock.exists()
        if made_lock:  # a scan that got as far as locking would leave /dev/full.lock behind
            lock.unlink()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(target) in lines[0], lines
    assert not made_lock


@pytest.mark.parametrize("fmt, kind, needle", [
    ("json", "/dev/full", "--json is a character device, not a regular file"),
    ("html", "fifo", "--html is a named pipe (FIFO), not a regular file"),
    ("csv", "/dev/zero", "--csv is a character device, not a regular file"),
])
def test_detect_refuses_report_targets_that_are_not_regular_files(tmp_path, clip, fmt, kind, needle):
    """A report written to /dev/full was lost (as root, the atomic rename would even have replaced
    the device with a file); to a FIFO it blocked. Refused before the model loads."""
    target = _special(tmp_path, kind)
    r = avdetect_bounded("detect", str(clip), f"--{fmt}", str(target), "--checkpoint", str(tmp_path / "none"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert Path(kind).is_char_device() if kind.startswith("/dev/") else target.is_fifo()  # left as it was


def test_detect_refuses_a_report_name_taken_by_a_fifo_in_the_folder(tmp_path, clip):
    from avdetect.cli import report_names

    other = tmp_path / "other.mp4"
    other.symlink_to(clip)
    out = tmp_path / "reports"
    out.mkdir()
    names = report_names([str(clip), str(other)])
    os.mkfifo(out / f"{names[str(other)]}.vtt")
    r = avdetect_bounded("detect", str(clip), str(other), "--vtt", str(out), "--checkpoint", str(tmp_path / "none"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "other.vtt" in lines[0] and "is a named pipe (FIFO)" in lines[0], lines


def test_write_atomic_never_replaces_a_device_or_a_fifo(tmp_path):
    from avdetect.errors import ReportError
    from avdetect.report.writers import write_atomic

    fifo = _special(tmp_path, "fifo")
    with pytest.raises(ReportError, match=r"named pipe \(FIFO\), not a regular file"):
        write_atomic(fifo, "{}")
    assert fifo.is_fifo() and list(tmp_path.iterdir()) == [fifo]  # no temporary file left either


@pytest.mark.parametrize("kind, needle", [
    ("loop", "a symbolic link loop (ELOOP"),
    ("dangling", "no such file: a dangling symbolic link"),
    ("fifo", "not a regular file (a named pipe (FIFO))"),
])
def test_links_and_fifos_given_as_input_are_named(tmp_path, kind, needle):
    p = tmp_path / f"{kind}.mp4"
    if kind == "loop":
        p.symlink_to(p)
    elif kind == "dangling":
        p.symlink_to(tmp_path / "gone.mp4")
    else:
        os.mkfifo(p)
    for cmd in ("probe", "detect"):
        r = avdetect_bounded(cmd, str(p), "--checkpoint" if cmd == "detect" else "--no-faces",
                             *([str(tmp_path / "none")] if cmd == "detect" else []), timeout=30)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and str(p) in lines[0], (cmd, lines)


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
