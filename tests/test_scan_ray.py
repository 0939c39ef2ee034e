"""Scan engines: list-file inputs and the engine choice (local engine, always run), and the Ray
engine on a local Ray cluster started by the test (skipped without ``ray``): a worker killed
mid-scan and the driver killed mid-scan lose nothing and duplicate nothing.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import run_ffmpeg, tiny_checkpoint, wait_for_lines

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCAN_OPTIONS = {"forensics": False, "thumbnails": False}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scan_engines")


@pytest.fixture(scope="module")
def checkpoint(work) -> Path:
    return tiny_checkpoint(work / "tiny")


@pytest.fixture(scope="module")
def detector(checkpoint):
    from avdetect.api import Detector

    return Detector.from_pretrained(checkpoint, device="cpu", **SCAN_OPTIONS)


@pytest.fixture(scope="module")
def corpus(work) -> Path:
    from avdetect.synth import ClipSpec, Manipulation, render_clip

    src = work / "src.mp4"
    render_clip(src, ClipSpec(seed=21, duration=8.0, size=256, crf=23,
                              manipulation=Manipulation(kind="both", segments=[(2.0, 3.0)])))
    folder = work / "corpus"
    (folder / "sub").mkdir(parents=True)
    for k in range(6):  # 3-s cuts: quick, but long enough to be caught mid-file
        run_ffmpeg("-ss", str(k * 0.8), "-t", "3", "-i", str(src), "-c:v", "libx264", "-c:a", "aac",
                   str(folder / ("sub" if k == 5 else "") / f"c{k}.mp4"))
    (folder / "bad.mp4").write_text("garbage")
    (folder / "readme.txt").write_text("not media")
    return folder


EXPECTED = sorted(["bad.mp4", "c0.mp4", "c1.mp4", "c2.mp4", "c3.mp4", "c4.mp4", "sub/c5.mp4"])


def lines(path: Path) -> list[dict]:
    out = []
    for x in path.read_text().splitlines():
        try:
            out.append(json.loads(x))
        except json.JSONDecodeError:
            continue  # a line cut by a kill (the scan itself ignores it too)
    return out


def comparable(rec: dict) -> dict:
    """A results line without what differs from run to run (timings, dates)."""
    d = json.loads(json.dumps(rec))
    d.pop("seconds")
    if d["status"] == "ok":
        for key in ("file_path", "started_at", "run_time_s", "stage_seconds"):
            d["report"]["provenance"].pop(key)
    return d


@pytest.fixture(scope="module")
def local_results(corpus, detector, work) -> dict[str, dict]:
    from avdetect.scan import scan

    out = work / "local.jsonl"
    s = scan(corpus, out, detector=detector)
    assert (s.done, s.ok, s.failed) == (7, 6, 1)
    return {r["file"]: r for r in lines(out)}


# ---------------------------------------------------------------------------------------
# inputs and the engine choice (no Ray needed)
def test_list_file_of_paths(corpus, detector, work, local_results):
    from avdetect.scan import list_inputs, scan

    listing = work / "lists" / "files.txt"
    listing.parent.mkdir()
    listing.write_text(f"# a corpus list\n../corpus/c0.mp4\n\n{corpus / 'sub' / 'c5.mp4'}\n../corpus/c0.mp4\n"
                       "../corpus/missing.mp4\n")
    keys = [k for k, _ in list_inputs(listing)]
    assert keys == ["../corpus/c0.mp4", str(corpus / "sub" / "c5.mp4"), "../corpus/missing.mp4"]  # as written, once
    out = work / "listed.jsonl"
    s = scan(listing, out, detector=detector)
    assert (s.found, s.ok, s.failed) == (3, 2, 1)
    recs = {r["file"]: r for r in lines(out)}
    assert recs["../corpus/missing.mp4"]["error_type"] == "MediaNotFoundError"
    # the same work as scanning the folder
    a, b = comparable(recs["../corpus/c0.mp4"]), comparable(local_results["c0.mp4"])
    assert a["report"].pop("file") == b["report"].pop("file") == str(corpus / "c0.mp4")
    a.pop("file"), b.pop("file")
    assert a == b
    assert scan(listing, out, detector=detector).skipped == 3  # resumable like a folder scan


def test_engine_errors(corpus, work, monkeypatch):
    from avdetect.errors import ConfigError
    from avdetect.scan import scan

    out = work / "never.jsonl"
    with pytest.raises(ConfigError, match="unknown scan engine"):
        scan(corpus, out, engine="dask")
    with pytest.raises(ConfigError, match="address is for the ray engine"):
        scan(corpus, out, address="auto")
    uri_list = work / "uris.txt"
    uri_list.write_text("s3://bucket/clip.mp4\n")
    with pytest.raises(ConfigError, match="only file:// URIs and paths are read"):
        scan(uri_list, out)
    from avdetect.scan import list_inputs

    clip = corpus / "sub" / "c5.mp4"
    (work / "file_uris.txt").write_text(clip.resolve().as_uri() + "\n")
    assert list_inputs(work / "file_uris.txt") == [(clip.resolve().as_uri(), clip.resolve())]
    with pytest.raises(ConfigError, match="not a folder or a list file"):
        scan(work / "nothing-here", out)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install 'avdetect\[ray\]'"):
        scan(corpus, out, engine="ray")


# ---------------------------------------------------------------------------------------
# the Ray engine on a local cluster
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the ray engine tests need Ray (pip install 'avdetect[ray]')")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    print(f"local Ray started in {time.perf_counter() - t0:.1f} s")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def busy_ray_workers() -> list[int]:
    """pids of scan actors working on a file now (Ray titles them ``ray::_RayScanWorker.run``)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        if cmd.startswith(b"ray::_RayScanWorker.run"):
            pids.append(int(d.name))
    return pids


def _scan_killing_a_worker(corpus, checkpoint, out: Path):
    """A Ray scan during which one busy worker is SIGKILLed; (summary, killed pid)."""
    from avdetect.scan import scan

    result: dict = {}

    def run():
        try:
            result["summary"] = scan(corpus, out, engine="ray", workers=2, checkpoint=checkpoint, **SCAN_OPTIONS)
        except BaseException as err:  # handed to the test thread below
            result["error"] = err
    driver = threading.Thread(target=run)
    driver.start()
    killed = None
    deadline = time.time() + 180
    while killed is None and time.time() < deadline and driver.is_alive():
        busy = busy_ray_workers()
        if busy:
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)  # a worker dies in the middle of a file
        time.sleep(0.01)
    driver.join(300)
    assert "error" not in result, result.get("error")
    assert killed is not None, "no Ray worker was seen working"
    return result["summary"], killed


def test_ray_scan_survives_a_killed_worker(ray_cluster, corpus, checkpoint, work, local_results):
    # the kill can land just as the worker finishes its file (then no task dies with it): the
    # scenario is repeated, on a fresh results file, until a file was lost with its worker
    for attempt in range(3):
        out = work / f"ray_worker_kill_{attempt}.jsonl"
        s, _ = _scan_killing_a_worker(corpus, checkpoint, out)
        recs = lines(out)
        assert sorted(r["file"] for r in recs) == EXPECTED  # every file exactly once, whatever the timing
        assert (s.done, s.ok, s.failed) == (7, 6, 1)
        for r in recs:  # the same per-file work as the local engine
            assert comparable(r) == comparable(local_results[r["file"]]), r["file"]
        if s.worker_deaths >= 1:  # the killed worker's file was lost with it, and redone
            break
    assert s.worker_deaths >= 1, "in 3 tries no kill landed while a worker was on a file"


def test_ray_scan_resumes_after_the_driver_is_killed(ray_cluster, corpus, checkpoint, work):
    from avdetect.scan import scan

    out = work / "ray_driver_kill.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "avdetect", "-q", "scan", str(corpus), "--out", str(out),
                             "--engine", "ray", "--address", ray_cluster, "--workers", "2", "--checkpoint",
                             str(checkpoint), "--no-forensics"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_lines(proc, out, timeout=180, poll=0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # the driver dies mid-scan
        _, err = proc.communicate(timeout=30)
    first = [r["file"] for r in lines(out)]
    assert 1 <= len(first) <= 7, err.decode(errors="replace")
    s = scan(corpus, out, engine="ray", workers=2, checkpoint=checkpoint, **SCAN_OPTIONS)
    assert s.skipped == len(first) and s.done == 7 - len(first)
    assert sorted(r["file"] for r in lines(out)) == EXPECTED  # nothing lost, nothing twice
