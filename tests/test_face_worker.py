"""Face tracking in a child process (avdetect.faces.worker) and the model loading meanwhile
(Detector.from_pretrained(background=True)): same results as in one process, typed errors,
no process left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("face_worker")


@pytest.fixture(scope="module")
def clip(work) -> Path:
    from avdetect.synth import ClipSpec, Manipulation, render_clip

    path = work / "talk.mp4"
    render_clip(path, ClipSpec(seed=5, duration=4.0, size=256, crf=23,
                               manipulation=Manipulation(kind="both", segments=[(1.0, 2.0)])))
    return path


@pytest.fixture(scope="module")
def checkpoint(work) -> Path:
    return tiny_checkpoint(work / "tiny")


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.update(int(x) for x in text)
    return out


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def test_worker_windows_are_the_in_process_windows(clip):
    from avdetect.faces import FaceTracker
    from avdetect.faces.worker import FaceWorker
    from avdetect.forensics.features import window_features
    from avdetect.media import load_media

    media = load_media(clip)
    here = list(FaceTracker(backend="opencv", crops=True).iter_windows(media, window=30))
    worker = FaceWorker(media, "opencv", 30, keep_face=True, face_features=True)
    try:
        there = list(worker)
    finally:
        worker.close()
    assert [w.start_frame for w in there] == [w.start_frame for w in here] and len(here) == 4
    for a, b in zip(here, there):
        for name in ("boxes", "mouth_boxes", "confidence", "valid", "track_ids", "mouth", "face", "features", "roll"):
            assert _same(getattr(a, name), getattr(b, name)), name
        assert a.tracks == b.tracks and a.frame_size == b.frame_size and a.backend == b.backend
        assert a.stills == b.stills  # the face stills cross the pipe as they are (frame keys ints again)
        expected = window_features(a)
        assert b.forensic_error is None and set(b.forensic) == set(expected)
        for k, v in expected.items():
            assert _same(np.asarray(v), b.forensic[k]), k
    assert there[0].valid.mean() > 0.9  # the synthetic face is found: the comparison is not of empty tracks
    assert sorted(k for w in there for k in w.stills) == [0, 25, 50, 75]  # one a second (4-s clip)


def test_worker_drops_face_crops_the_model_does_not_read(clip):
    from avdetect.faces.worker import FaceWorker
    from avdetect.media import load_media

    worker = FaceWorker(load_media(clip), "opencv", 50, keep_face=False, face_features=True)
    try:
        first = next(worker)
    finally:
        worker.close()
    assert first.face is None and first.mouth.shape == (50, 96, 96, 3)
    assert first.forensic["sharpness"].shape == (50,)  # features were taken from the face crops before


def test_worker_errors_arrive_as_their_type(clip, tmp_path):
    """A file that turns unreadable after inspection: the worker's decode error is the same class
    and message as tracking in this process gives, not a generic failure of the worker."""
    from avdetect.errors import MediaError
    from avdetect.faces import FaceTracker
    from avdetect.faces.worker import FaceWorker
    from avdetect.media import load_media

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes())
    media = load_media(broken)
    broken.write_bytes(b"\0" * 4096)
    with pytest.raises(MediaError) as here:
        list(FaceTracker(backend="opencv").iter_windows(media, window=30))
    worker = FaceWorker(media, "opencv", 30)
    try:
        with pytest.raises(MediaError) as there:
            list(worker)
    finally:
        worker.close()
    assert type(there.value) is type(here.value) and str(there.value) == str(here.value)
    assert str(broken) in str(there.value)


def test_worker_is_gone_after_close_and_after_its_parent_is_killed(clip, tmp_path):
    from avdetect.faces.worker import FaceWorker
    from avdetect.media import load_media

    worker = FaceWorker(load_media(clip), "opencv", 25)
    next(worker)
    pid = worker._proc.pid
    worker.close()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    # a parent killed outright (SIGKILL: no cleanup runs) takes its face worker with it
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from avdetect.faces.worker import FaceWorker\n"
        "from avdetect.media import load_media\n"
        f"w = FaceWorker(load_media({str(clip)!r}), 'opencv', 25)\n"
        "print(w._proc.pid, flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert Path(f"/proc/{child}").exists()
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists(), "the face worker outlived its killed parent"


def test_detect_gives_the_same_report_with_faces_in_a_process_or_a_thread(clip, checkpoint):
    from avdetect.api import Detector

    det = Detector.from_pretrained(checkpoint, device="cpu")
    before = _children(os.getpid())
    reports = {mode: det.detect(clip, prefetch=mode).to_dict() for mode in ("process", "thread", "none")}
    assert _children(os.getpid()) <= before  # no face worker left running

    def strip(d):
        d = {k: v for k, v in d.items() if k != "provenance"}
        d["forensics"] = {k: v for k, v in d["forensics"].items() if k != "seconds"}
        return json.dumps(d, sort_keys=True)

    assert strip(reports["process"]) == strip(reports["thread"]) == strip(reports["none"])
    assert reports["process"]["provenance"]["parameters"]["prefetch"] == "process"


def test_auto_prefetch_tracks_in_a_process_only_where_it_pays():
    from avdetect.api import AUTO_PROCESS_MIN_S, resolve_prefetch

    long_s, short_s = AUTO_PROCESS_MIN_S, AUTO_PROCESS_MIN_S - 0.1
    assert resolve_prefetch("auto", long_s, model_loading=False, cores=2) == "process"
    assert resolve_prefetch("auto", short_s, model_loading=False, cores=2) == "thread"
    assert resolve_prefetch("auto", short_s, model_loading=True, cores=2) == "process"  # beside the torch import
    assert resolve_prefetch("auto", long_s, model_loading=True, cores=1) == "thread"  # no second core
    for mode in ("process", "thread", "none"):  # an explicit mode is kept
        assert resolve_prefetch(mode, short_s, model_loading=False, cores=1) == mode


def test_detect_chooses_the_prefetch_mode_per_file_and_reports_it(clip, checkpoint, monkeypatch):
    """The default ("auto"): a short file with the model loaded is tracked in a thread (no child
    process started); a file as long as AUTO_PROCESS_MIN_S, or one detected while the model still
    loads, in the face worker; the report names the mode used."""
    from avdetect import api
    from avdetect.api import Detector
    from avdetect.faces import worker

    started = []
    real_init = worker.FaceWorker.__init__
    monkeypatch.setattr(worker.FaceWorker, "__init__",
                        lambda self, *a, **k: started.append(1) or real_init(self, *a, **k))
    monkeypatch.setattr(api, "_usable_cores", lambda: 2)
    det = Detector.from_pretrained(checkpoint, device="cpu", forensics=False, thumbnails=False)
    assert det.options.prefetch == "auto" and not det.loading
    r = det.detect(clip)
    assert r.provenance.parameters["prefetch"] == "thread" and not started
    monkeypatch.setattr(api, "AUTO_PROCESS_MIN_S", 4.0)  # the clip lasts 4 s
    r = det.detect(clip)
    assert r.provenance.parameters["prefetch"] == "process" and started == [1]
    monkeypatch.setattr(api, "AUTO_PROCESS_MIN_S", 30.0)
    monkeypatch.setattr(Detector, "loading", property(lambda self: True))  # as while a background load runs
    r = det.detect(clip)
    assert r.provenance.parameters["prefetch"] == "process" and started == [1, 1]


def test_a_background_load_gives_the_same_detector(clip, checkpoint):
    from avdetect.api import Detector

    det = Detector.from_pretrained(checkpoint, device="cpu", background=True)
    assert det.config.window_frames > 0  # known before the weights are loaded
    a = det.detect(clip, hop=40, forensics=False)
    b = Detector.from_pretrained(checkpoint, device="cpu").detect(clip, hop=40, forensics=False)
    assert a.fake_probability == b.fake_probability and a.provenance.weights_sha256 == b.provenance.weights_sha256


def test_a_broken_checkpoint_loaded_in_the_background_is_a_checkpoint_error(clip, checkpoint, tmp_path):
    import shutil

    from avdetect.api import Detector
    from avdetect.errors import CheckpointError

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    det = Detector.from_pretrained(broken, device="cpu", background=True)  # the config is fine
    with pytest.raises(CheckpointError, match="safetensors"):
        det.detect(clip)
    # the command line says it once, for the whole batch, and exits 2
    proc = subprocess.run([sys.executable, "-m", "avdetect", "detect", str(clip), str(clip), "--checkpoint", str(broken),
                           "--json", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "safetensors" in lines[0] and "Traceback" not in proc.stderr
    # a config that does not parse is refused at once, before any load starts
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="invalid JSON"):
        Detector.from_pretrained(broken, background=True)


def test_reading_a_checkpoint_config_does_not_import_torch(checkpoint):
    code = ("import sys; from avdetect.models.config import read_checkpoint_config; "
            f"c = read_checkpoint_config({str(checkpoint)!r}); "
            "assert 'torch' not in sys.modules, 'torch was imported'; print(c.window_frames)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 0


def test_the_first_torch_import_runs_without_cyclic_collections_and_freezes_what_it_made(checkpoint):
    # a fresh interpreter: this one has imported torch already
    code = ("import gc, sys; from avdetect.api import _load_model; "
            "runs = []; gc.callbacks.append(lambda phase, info: phase == 'start' and runs.append(info['generation'])); "
            f"m, d = _load_model({str(checkpoint)!r}, 'cpu'); "
            "assert 'torch' in sys.modules and gc.isenabled(), 'collector left off'; "
            "assert runs == [], f'collections during the import: {runs}'; "
            "frozen = gc.get_freeze_count(); assert frozen > 100000, frozen; "
            f"m2, d2 = _load_model({str(checkpoint)!r}, 'cpu'); "  # a second load changes nothing
            "assert gc.get_freeze_count() == frozen and gc.isenabled(); "
            "print(frozen)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # a process that turned the collector off keeps it off, and nothing is frozen for it
    code = ("import gc; gc.disable(); from avdetect.api import _load_model; "
            f"_load_model({str(checkpoint)!r}, 'cpu'); assert not gc.isenabled() and gc.get_freeze_count() == 0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_default_threads_leave_a_core_to_the_face_tracker(monkeypatch):
    from avdetect import api

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert api.default_threads() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert api.default_threads() == api.MAX_DEFAULT_THREADS
    monkeypatch.setattr(os, "getloadavg", lambda: (12.5, 0.0, 0.0))
    assert api.default_threads() == 3  # 16 cores, 12 busy, one for the face tracker
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0, 0.0, 0.0))
    assert api.default_threads() == 1


def test_the_worker_decodes_on_one_thread_only_on_small_machines(clip):
    """On 2 cores the worker's ffmpeg thread pool cost CPU for nothing; on more it is left alone.
    One thread decodes the same frames."""
    code = "import os; from avdetect.faces.worker import decode_threads; os.sched_setaffinity(0, {%s}); print(decode_threads())"
    cores = sorted(os.sched_getaffinity(0))
    proc = subprocess.run([sys.executable, "-c", code % ",".join(map(str, cores[:2]))], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1"]
    if len(cores) > 2:  # (CI machines with more cores: ffmpeg keeps its own count)
        proc = subprocess.run([sys.executable, "-c", code % ",".join(map(str, cores))], capture_output=True,
                              text=True, timeout=120)
        assert proc.stdout.split() == ["None"]
    from avdetect.media import Media, load_media

    media = load_media(str(clip))
    single = Media(media.info, decode_threads=1)
    assert "-threads" in single._video_cmd(0, "yuv420p") and "-threads" not in media._video_cmd(0, "yuv420p")
    a = [w.copy() for _, w in media.iter_windows(size=25, pixel_format="yuv420p")]
    b = [w.copy() for _, w in single.iter_windows(size=25, pixel_format="yuv420p")]
    assert len(a) == len(b) > 1 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_messages_sent_from_two_threads_arrive_whole():
    """The worker's main thread sends windows while another (the evidence's audio step) may log:
    each message is written whole, never interleaved with another (that once garbled a length,
    which the reader then tried to allocate: MemoryError), and a garbled length is refused."""
    import io
    import threading

    from avdetect.faces import worker

    r, w = os.pipe()
    out = os.fdopen(w, "wb")
    big = np.arange(300_000, dtype=np.int64)  # 2.4 MB: many pipe writes per message

    def windows():
        for i in range(20):
            worker._send(out, "window", {"i": i}, {"a": big + i})

    def logs():
        for i in range(2000):
            worker._send(out, "log", {"name": "t", "level": 20, "message": f"line {i}"})

    got, failed = [], []
    src = os.fdopen(r, "rb")

    def read():
        try:
            got.extend(iter(lambda: worker._receive(src), None))
        except Exception as err:  # a garbled message: stop reading, so that the senders stop too
            failed.append(err)
            src.close()

    def send(fn):
        try:
            fn()
        except (BrokenPipeError, ValueError):  # the reader gave up
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    senders = [threading.Thread(target=send, args=(f,), daemon=True) for f in (windows, logs)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(60)
    out.close()
    reader.join(60)
    assert not failed, failed
    assert [m[1]["i"] for m in got if m[0] == "window"] == list(range(20))
    assert all(np.array_equal(m[2]["a"], big + m[1]["i"]) for m in got if m[0] == "window")
    assert [m[1]["message"] for m in got if m[0] == "log"] == [f"line {i}" for i in range(2000)]
    garbled = io.BytesIO(worker._LEN.pack(1 << 60) + b"{}")
    with pytest.raises(RuntimeError, match="corrupt message"):
        worker._receive(garbled)


def test_the_evidence_stage_runs_in_the_face_worker(clip, checkpoint, monkeypatch):
    """With faces in a worker process, the worker runs the evidence stage while the model runs:
    the analysis in this process is not called (here it would fail), and the report has it."""
    import avdetect.forensics
    from avdetect.api import Detector

    def broken(*args, **kwargs):
        raise RuntimeError("the analysis ran in the parent")

    monkeypatch.setattr(avdetect.forensics, "analyze", broken)
    det = Detector.from_pretrained(checkpoint, device="cpu")
    r = det.detect(clip, prefetch="process")
    assert r.forensics["error"] is None and r.forensics["ran"] and r.forensics["shared_face_tracking"]
    assert not [w for w in r.warnings if w.code == "forensics_failed"]
    r = det.detect(clip, prefetch="thread")  # the same stage in this process: the patched analysis
    assert "the analysis ran in the parent" in r.forensics["error"]


def test_a_closed_prefetch_ends_instead_of_blocking():
    """A Prefetch closed before its producer finished (its queue never gets the end marker
    from the producer) ends a later iteration at once: it once blocked detect for ever."""
    import threading

    from avdetect.media import Prefetch

    release = threading.Event()

    def slow():
        yield 1
        release.wait(5)
        yield 2

    p = Prefetch(slow())
    assert next(p) == 1
    release.set()
    p.close()
    rest: list = []
    reader = threading.Thread(target=lambda: rest.extend(p), daemon=True)
    reader.start()
    reader.join(2)
    assert not reader.is_alive(), "iterating a closed Prefetch blocked"
    assert rest == []


def test_a_failed_evidence_stage_in_the_worker_is_recorded(clip, monkeypatch):
    """The worker's evidence stage failing (here: its analysis raising) is a forensics failure in
    the report, as one in this process is, never a lost detection."""
    import avdetect.forensics
    from avdetect.evidence import gather_evidence
    from avdetect.faces.worker import _evidence
    from avdetect.media import load_media

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(avdetect.forensics, "analyze", broken)
    media = load_media(clip)
    done = _evidence(media, None)
    assert done == {"error": "RuntimeError: boom"}

    class Ran:
        def worker_evidence(self):
            return done

    warnings: list = []
    items, info = gather_evidence(media, Ran(), True, warnings)
    assert items == [] and info["error"] == "RuntimeError: boom"
    assert [w.code for w in warnings] == ["forensics_failed"]


def test_a_worker_killed_mid_message_is_a_media_error(clip):
    """The child killed while it writes a window (out of memory, a signal): the parent sees a
    cut message, and says the worker stopped, as a MediaError naming the file and the signal."""
    from avdetect.errors import MediaError
    from avdetect.faces.worker import FaceWorker
    from avdetect.media import load_media

    worker = FaceWorker(load_media(clip), "opencv", 25)
    try:
        next(worker)
        time.sleep(0.5)  # the next window (about 2 MB) is being written into the 64 KB pipe
        worker._proc.send_signal(signal.SIGKILL)
        with pytest.raises(MediaError, match="exited with code -9"):
            list(worker)
    finally:
        worker.close()


def test_the_model_takes_the_face_workers_core_once_it_has_finished(clip, checkpoint, monkeypatch):
    """threads=N while the face worker runs; N + 1 for the windows left once it has finished
    (where the machine has the core); faces in a thread never free one."""
    import torch

    from avdetect import api, sources
    from avdetect.api import Detector

    monkeypatch.setattr(api, "_usable_cores", lambda: 4)
    monkeypatch.setattr(sources.Sources, "worker_finished", lambda self: True)
    det = Detector.from_pretrained(checkpoint, device="cpu", forensics=False, thumbnails=False)
    det.detect(clip, threads=1, prefetch="process")
    assert torch.get_num_threads() == 2
    det.detect(clip, threads=1, prefetch="thread")
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(api, "_usable_cores", lambda: 1)  # no core to take
    det.detect(clip, threads=1, prefetch="process")
    assert torch.get_num_threads() == 1


def test_child_processes_get_the_malloc_tunables_and_large_pipes(clip, monkeypatch):
    """ffmpeg decoders and the face worker run with CHILD_MALLOC_TUNABLES in GLIBC_TUNABLES
    (read from the running processes' environments), added to other tunables, and not when the
    caller sets malloc tunables of its own; their output pipes hold 1 MB (Linux)."""
    import fcntl

    from avdetect._process import CHILD_MALLOC_TUNABLES, child_env
    from avdetect.faces.worker import FaceWorker
    from avdetect.media import load_media

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert child_env()["GLIBC_TUNABLES"] == CHILD_MALLOC_TUNABLES
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
    assert child_env()["GLIBC_TUNABLES"] == "glibc.pthread.rseq=0:" + CHILD_MALLOC_TUNABLES
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert child_env()["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"
    monkeypatch.delenv("GLIBC_TUNABLES")

    def tuned(pid: int) -> bool:  # (glibc splits GLIBC_TUNABLES at ":" in the process's own environ)
        env = Path(f"/proc/{pid}/environ").read_bytes()
        return b"GLIBC_TUNABLES=" in env and all(t.encode() in env for t in CHILD_MALLOC_TUNABLES.split(":"))

    media = load_media(str(clip))
    frames = media.iter_windows(size=10, pixel_format="yuv420p")
    next(frames)  # the decoder now waits on a full pipe: alive
    decoders = [p for p in _children(os.getpid()) if "ffmpeg" in Path(f"/proc/{p}/cmdline").read_text()]
    assert decoders and all(tuned(p) for p in decoders)
    frames.close()
    worker = FaceWorker(media, "opencv", 25)
    try:
        assert tuned(worker._proc.pid)
        if int(Path("/proc/sys/fs/pipe-max-size").read_text()) >= 1 << 20:
            assert fcntl.fcntl(worker._proc.stdout.fileno(), getattr(fcntl, "F_GETPIPE_SZ", 1032)) == 1 << 20
    finally:
        worker.close()
