"""``avdetect serve`` as a client meets it: a real uvicorn process on a loopback port, HTTP over
httpx, kill -9 and restart, the upload page in headless Chromium.

A randomly initialised avdetect-tiny keeps it quick: these tests are about the service
(queueing, persistence, errors, limits, auth), not about what the model says.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import run_ffmpeg, tiny_checkpoint

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (pip install 'avdetect[test]')")
pytest.importorskip("fastapi", reason="avdetect serve needs fastapi (pip install 'avdetect[serve]')")
pytest.importorskip("uvicorn", reason="avdetect serve needs uvicorn (pip install 'avdetect[serve]')")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m avdetect serve ...`` in its own process group, logging to a file."""

    def __init__(self, db: Path, checkpoint: Path, *args: str, host: str = "127.0.0.1"):
        self.db, self.checkpoint, self.args, self.host = db, checkpoint, args, host
        db.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 90) -> "Server":
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        env.pop("AVDETECT_API_TOKEN", None)
        self.starts += 1
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(f"--- start {self.starts}\n")
            fh.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "avdetect", "serve", "--host", self.host, "--port", str(self.port), "--db",
                 str(self.db), "--checkpoint", str(self.checkpoint), "--threads", "1", *self.args],
                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not come up in {timeout} s:\n{self.log_text()}")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its ffmpeg children, as an OOM kill would
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def client(self, token: str | None = None) -> "httpx.Client":
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def upload(client, path: Path, name: str | None = None):
    with open(path, "rb") as fh:
        return client.post("/v1/detections", files={"file": (name or path.name, fh, "application/octet-stream")})


def wait_for(client, job_id: str, states=("done", "failed"), timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.get(f"/v1/detections/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def db_rows(db: Path) -> dict[str, dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM jobs ORDER BY seq")}
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------
# fixtures: a tiny model, clips, one server for most tests
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def checkpoint(work) -> Path:
    return tiny_checkpoint(work / "tiny")


@pytest.fixture(scope="module")
def media_root(work) -> Path:
    root = work / "media"
    (root / "sub").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def clip(media_root) -> Path:
    from avdetect.synth import ClipSpec, Manipulation, render_clip

    path = media_root / "sub" / "clip.mp4"
    render_clip(path, ClipSpec(seed=11, duration=4.0, size=256, crf=23,
                               manipulation=Manipulation(kind="both", segments=[(1.0, 2.0)])))
    return path


@pytest.fixture(scope="module")
def long_clip(work) -> Path:
    """A clip that takes the tiny model a few seconds (time to kill the server mid-job)."""
    from avdetect.synth import ClipSpec, Manipulation, render_clip

    path = work / "long.mp4"
    render_clip(path, ClipSpec(seed=12, duration=10.0, size=256, crf=28, manipulation=Manipulation(kind="real")))
    return path


@pytest.fixture(scope="module")
def server(work, checkpoint, media_root, clip):
    s = Server(work / "state" / "jobs.sqlite3", checkpoint, "--media-root", str(media_root),
               "--max-upload-mb", "1.5", "--max-duration", "30").start()
    yield s
    s.stop()


# ---------------------------------------------------------------------------------------
# the happy path
VOLATILE_PROVENANCE = ("file_path", "started_at", "run_time_s", "stage_seconds")


def _comparable(report: dict) -> dict:
    d = json.loads(json.dumps(report))
    d.pop("file")
    for key in VOLATILE_PROVENANCE:
        d["provenance"].pop(key)
    d["forensics"].pop("seconds", None)  # timings of the evidence analyses
    return d


def test_upload_report_equals_detect(server, clip, checkpoint):
    """Upload a clip, poll it to done: the report is the one ``detect`` writes for the same file
    (same schema, same numbers), and the HTML/VTT/CSV are its writers' output."""
    import avdetect
    from avdetect.report import to_csv, to_vtt, validate_report

    with server.client() as c:
        r = upload(c, clip)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["state"] in ("queued", "running") and r.headers["location"] == f"/v1/detections/{job['id']}"
        assert job["file"] == "clip.mp4" and job["duration_s"] == pytest.approx(4.0, abs=0.05)
        done = wait_for(c, job["id"])
        assert done["state"] == "done", done
        assert done["attempts"] == 1 and done["run_s"] > 0 and set(done["links"]) >= {"html", "json", "vtt", "csv"}
        served = done["report"]
        validate_report(served)
        assert served["file"] == "clip.mp4"  # as the client named it
        # the service passes the command line's default threads, recorded among the parameters; where
        # faces were tracked is chosen per run (detect's own model may still be loading: the process)
        params = served["provenance"]["parameters"]
        expected = avdetect.detect(clip, checkpoint=checkpoint, device="cpu", threads=params["threads"],
                                   prefetch=params["prefetch"]).to_dict()
        assert _comparable(served) == _comparable(expected)
        assert served["provenance"]["sha256"] == expected["provenance"]["sha256"]

        as_json = c.get(f"/v1/detections/{job['id']}/report.json")
        assert as_json.headers["content-type"].startswith("application/json") and as_json.json() == served
        html = c.get(f"/v1/detections/{job['id']}/report.html")
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in html.headers["content-security-policy"]
        assert "<html" in html.text and "clip.mp4" in html.text and "http://" not in html.text.replace(
            "http://www.w3.org", "")  # self-contained (the SVG namespace is not a fetch)
        assert c.get(f"/v1/detections/{job['id']}/report.vtt").text == to_vtt(served)
        assert c.get(f"/v1/detections/{job['id']}/report.csv").text == to_csv(served)

        # by path under the media root: the same file, the same result
        r = c.post("/v1/detections", json={"path": "sub/clip.mp4"})
        assert r.status_code == 202, r.text
        by_path = wait_for(c, r.json()["id"])
        assert by_path["state"] == "done" and by_path["file"] == "sub/clip.mp4"
        assert _comparable(by_path["report"]) == _comparable(served)
    assert not any((server.db.parent / "uploads").iterdir())  # finished uploads are removed


# ---------------------------------------------------------------------------------------
# bad input: a 4xx with the command line's one-line message, never a traceback
def _cli_errors(paths: list[Path], checkpoint: Path, capsys) -> dict[str, str]:
    """``{file name: message}`` of ``avdetect detect`` for each bad file (after 'error: PATH: ')."""
    from avdetect.cli import main

    capsys.readouterr()
    assert main(["-q", "detect", *map(str, paths), "--checkpoint", str(checkpoint), "--device", "cpu"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(paths), lines
    out = {}
    for path, line in zip(paths, lines):
        prefix = f"avdetect detect: error: {path}: "
        assert line.startswith(prefix), line
        out[path.name] = line[len(prefix):]
    return out


def test_bad_files_are_4xx_with_the_cli_message(server, work, media_root, checkpoint, capsys):
    bad = work / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mp4").write_text("just some text\n" * 50)
    (bad / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    cli = _cli_errors([bad / name for name in ("empty.mp4", "notes.mp4", "broken.mp4")], checkpoint, capsys)
    with server.client() as c:
        for name, message in cli.items():
            r = upload(c, bad / name)
            assert r.status_code == 422, (name, r.text)
            body = r.json()
            assert body["error"] == f"{name}: {message}", (body, message)  # the command line's words
            assert body["error_type"] in ("NotMediaError", "CorruptMediaError") and "Traceback" not in r.text
        # paths: missing, outside the root, escaping through a symlink, a folder
        r = c.post("/v1/detections", json={"path": "sub/missing.mp4"})
        assert r.status_code == 404 and r.json()["error"] == "sub/missing.mp4: no such file", r.text
        outside = work / "long_outside.mp4"
        outside.write_bytes(b"x")
        for given in (str(outside), "../long_outside.mp4", "link.mp4"):
            if given == "link.mp4" and not (media_root / "link.mp4").exists():
                (media_root / "link.mp4").symlink_to(outside)
            r = c.post("/v1/detections", json={"path": given})
            assert r.status_code == 403, (given, r.text)
            assert r.json()["error"] == f"{given}: outside the media root; only files under it may be submitted by path"
        r = c.post("/v1/detections", json={"path": "sub"})
        assert r.status_code == 404 and r.json()["error"] == "sub: not a regular file (a folder)"
        # malformed requests
        assert c.post("/v1/detections", json={"file": "x"}).status_code == 400
        assert c.post("/v1/detections", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
        r = c.post("/v1/detections", content=b"raw bytes", headers={"content-type": "video/mp4"})
        assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
        r = c.post("/v1/detections", data={"note": "no file"}, files={"other": ("x.mp4", b"123")})
        assert r.status_code == 400 and "'file'" in r.json()["error"]
        r = c.post("/v1/detections", content=b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\nab",
                   headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 400 and "ended before the file did" in r.json()["error"], r.text
        # unknown jobs and formats
        assert c.get("/v1/detections/" + "0" * 32).status_code == 404
        assert c.get("/v1/detections/" + "0" * 32 + "/report.html").status_code == 404
        assert c.get("/v1/detections?state=bogus").status_code == 400
    assert "Traceback" not in server.log_text()
    assert not any((server.db.parent / "uploads").iterdir())  # refused uploads leave nothing behind


def test_the_bad_input_corpus_through_the_service(server, work):
    """Issue 18's corpus (tests/test_bad_inputs.py) uploaded as a user would: what cannot be read
    is a 422 naming its error class, what can is a finished job whose report carries the same
    warnings and verdict reasons as ``detect`` gives the file."""
    from test_bad_inputs import ERRORS, REPORTS, make_corpus

    unreadable = ["empty.mp4", "random_bytes.mp4", "text.mp4", "truncated_half.mp4", "truncated_4k.mp4", "no_moov.mp4",
                  "subtitles_only.mkv"]
    readable = ["audio_only.wav", "video_only.mp4", "vfr.mp4", "late_audio.mp4", "still.png", "mpeg1.mpg"]
    (work / "corpus").mkdir(exist_ok=True)
    made = make_corpus(work / "corpus", set(unreadable) | set(readable))
    with server.client() as c:
        for name in unreadable:
            r = upload(c, made[name])
            assert r.status_code == 422, (name, r.text)
            assert r.json()["error_type"] == ERRORS[name][0] and ERRORS[name][1] in r.json()["error"], (name, r.text)
        jobs = {}
        for name in readable:
            r = upload(c, made[name])
            assert r.status_code == 202, (name, r.text)
            jobs[name] = r.json()["id"]
        for name, job in jobs.items():
            done = wait_for(c, job)
            assert done["state"] == "done", (name, done)
            warned, reasons = REPORTS[name]
            assert warned <= {w["code"] for w in done["report"]["warnings"]}, (name, done["report"]["warnings"])
            assert reasons <= {x["code"] for x in done["report"]["verdict_reasons"]}, name
    assert "Traceback" not in server.log_text()


def test_limits_are_413(server, work):
    big = work / "big.mp4"
    big.write_bytes(os.urandom(2 * 2**20))  # over the 1.5 MiB limit
    long_audio = work / "long_audio.m4a"  # 40 s: over the 30 s limit, though small
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000:duration=40", "-c:a", "aac", "-b:a", "24k",
               str(long_audio))
    with server.client() as c:
        r = upload(c, big)
        assert r.status_code == 413 and "exceeds the limit of 1572864 bytes" in r.json()["error"], r.text

        def chunks():  # no Content-Length: cut off while it streams
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.mp4\"\r\n\r\n"
            for _ in range(40):
                yield b"\x00" * 65536
            yield b"\r\n--b--\r\n"
        r = c.post("/v1/detections", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and r.json()["error"].startswith("s.mp4: upload exceeds the limit"), r.text
        r = upload(c, long_audio)
        assert r.status_code == 413, r.text
        assert r.json() == {"error": "long_audio.m4a: duration 40.0 s exceeds the limit of 30.0 s",
                            "error_type": "MediaTooLargeError"}
        assert c.get("/healthz").json()["max_duration_s"] == 30.0
    assert not any((server.db.parent / "uploads").iterdir())


def test_concurrent_uploads_queue_on_one_model(server, clip):
    """Three uploads at once: all accepted at once, run one after another by the one worker."""
    results: list = []

    def send(k):
        with server.client() as c:
            results.append(upload(c, clip, name=f"c{k}.mp4"))
    threads = [threading.Thread(target=send, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status_code for r in results) == [202] * 3
    with server.client() as c:
        jobs = [wait_for(c, r.json()["id"]) for r in results]
        assert all(j["state"] == "done" for j in jobs)
        spans = sorted((j["started_at"], j["finished_at"]) for j in jobs)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # never two at once
        m = c.get("/metrics").text
    assert "avdetect_workers 1" in m
    assert server.log_text().count("model avdetect-tiny loaded") == server.starts  # one model per start


def test_metrics_and_healthz(server):
    with server.client() as c:
        h = c.get("/healthz").json()
        assert h["status"] == "ok" and h["model"] == "avdetect-tiny" and h["auth"] is False and h["paths"] is True
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
        counts = c.get("/v1/detections?limit=1").json()["counts"]
    lines = r.text.splitlines()
    for state, n in counts.items():
        assert f'avdetect_jobs{{state="{state}"}} {n}' in lines
    samples = {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in lines if ln and not ln.startswith("#")}
    assert samples['avdetect_stage_seconds_count{stage="model"}'] == counts["done"]
    assert samples['avdetect_stage_seconds_sum{stage="model"}'] > 0
    assert samples["avdetect_job_run_seconds_count"] == counts["done"] + counts["failed"]
    assert "# TYPE avdetect_stage_seconds summary" in lines


# ---------------------------------------------------------------------------------------
# kill -9 mid-job, restart: nothing accepted or finished is lost, only the cut job runs again
def test_kill9_mid_job_then_restart(server, clip, long_clip):
    with server.client() as c:
        first = wait_for(c, upload(c, clip, name="before.mp4").json()["id"])
        assert first["state"] == "done"
        before_report = c.get(f"/v1/detections/{first['id']}/report.json").text
        cut = upload(c, long_clip).json()["id"]
        behind = upload(c, clip, name="behind.mp4").json()["id"]
        wait_for(c, cut, states=("running",), timeout=60)
        time.sleep(0.3)  # inside the job (the long clip takes seconds)
        assert c.get(f"/v1/detections/{cut}").json()["state"] == "running"
    known = set(db_rows(server.db))
    server.kill9()
    rows = db_rows(server.db)
    assert rows[cut]["state"] == "running" and rows[behind]["state"] == "queued" and rows[first["id"]]["state"] == "done"
    assert (server.db.parent / "uploads" / cut).is_dir()  # the file of the cut job survives with it

    server.start()
    assert "was running when the service stopped: queued again" in server.log_text()
    with server.client() as c:
        after_cut = wait_for(c, cut)
        after_behind = wait_for(c, behind)
        assert after_cut["state"] == "done" and after_behind["state"] == "done"
        assert (after_cut["attempts"], after_cut["interruptions"]) == (2, 1)  # re-run once, after the kill
        assert (after_behind["attempts"], after_behind["interruptions"]) == (1, 0)  # never started before: run once
        again = c.get(f"/v1/detections/{first['id']}").json()
        assert again["finished_at"] == first["finished_at"] and again["attempts"] == 1  # not redone
        assert c.get(f"/v1/detections/{first['id']}/report.json").text == before_report  # not lost
        counts = c.get("/v1/detections?limit=1").json()["counts"]
        m = c.get("/metrics").text
    rows = db_rows(server.db)
    assert set(rows) == known  # no job lost, none added
    assert counts["queued"] == counts["running"] == 0
    assert f'avdetect_stage_seconds_count{{stage="model"}} {counts["done"]}' in m  # each finished exactly once
    assert after_cut["report"]["provenance"]["duration_s"] == pytest.approx(10.0, abs=0.1)


def test_second_server_on_the_same_db_refuses(server, checkpoint):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "avdetect", "serve", "--port", str(free_port()), "--db", str(server.db),
                        "--checkpoint", str(checkpoint)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("avdetect serve: error:")]
    assert len(err) == 1 and f"in use by another avdetect serve (pid {server.proc.pid})" in err[0], r.stderr
    assert "Traceback" not in r.stderr


def test_missing_checkpoint_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "avdetect", "serve", "--port", str(free_port()), "--db",
                        str(tmp_path / "j.sqlite3"), "--checkpoint", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("avdetect serve: error: ")


# ---------------------------------------------------------------------------------------
# auth: on by default on a non-loopback address
def test_token_required_off_loopback_and_sigterm_requeues(work, checkpoint, clip, long_clip):
    s = Server(work / "auth" / "jobs.sqlite3", checkpoint, "--no-forensics", "--shutdown-grace", "0",
               host="0.0.0.0").start()
    try:
        token_file = work / "auth" / "api_token"
        token = token_file.read_text().strip()
        assert len(token) >= 32 and (token_file.stat().st_mode & 0o777) == 0o600
        assert str(token_file) in s.log_text() and token not in s.log_text()  # the path is logged, not the secret
        with s.client() as anon:
            assert anon.get("/healthz").json()["auth"] is True  # health checks need no token
            for method, path in (("POST", "/v1/detections"), ("GET", "/v1/detections"), ("GET", "/metrics"),
                                 ("GET", "/v1/detections/" + "0" * 32)):
                r = anon.request(method, path)
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, r.text)
                assert "Authorization: Bearer" in r.json()["error"]
            assert upload(anon, clip).status_code == 401  # refused before the body is read
        with s.client(token="wrong" * 8) as bad:
            assert bad.get("/v1/detections").status_code == 401
        with s.client(token=token) as c:
            r = upload(c, clip)
            assert r.status_code == 202, r.text
            assert wait_for(c, r.json()["id"])["state"] == "done"
            assert c.get("/metrics").status_code == 200
            assert not any((work / "auth" / "uploads").iterdir())  # nothing kept from the refused uploads
            # a clean stop (SIGTERM) mid-job puts the job back in the queue, not counted as a crash
            running = upload(c, long_clip).json()["id"]
            wait_for(c, running, states=("running",), timeout=60)
        s.stop()
        # uvicorn re-raises SIGTERM after its clean shutdown, so the exit status says "terminated"
        assert s.proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in s.log_text()
        row = db_rows(s.db)[running]
        assert (row["state"], row["attempts"], row["interruptions"]) == ("queued", 1, 0)
        assert f"job {running} interrupted by the shutdown: queued again" in s.log_text()
        assert (work / "auth" / "uploads" / running).is_dir()  # its file is kept for the next start
    finally:
        s.stop()


def test_token_resolution(tmp_path, monkeypatch):
    from avdetect.errors import ConfigError
    from avdetect.serve import ServeConfig

    monkeypatch.delenv("AVDETECT_API_TOKEN", raising=False)
    assert ServeConfig(db=tmp_path / "a" / "j.sqlite3").resolve_token() is None  # loopback: open
    assert ServeConfig(db=tmp_path / "a" / "j.sqlite3", host="localhost", token="t" * 20).resolve_token() == "t" * 20
    monkeypatch.setenv("AVDETECT_API_TOKEN", "e" * 20)
    assert ServeConfig(db=tmp_path / "a" / "j.sqlite3", host="::1").resolve_token() == "e" * 20
    monkeypatch.delenv("AVDETECT_API_TOKEN")
    cfg = ServeConfig(db=tmp_path / "b" / "j.sqlite3", host="10.1.2.3")
    generated = cfg.resolve_token()
    assert generated and cfg.resolve_token() == generated  # kept across restarts
    assert ServeConfig(db=tmp_path / "c" / "j.sqlite3", host="0.0.0.0", auth=False).resolve_token() is None
    with pytest.raises(ConfigError, match="at least 16"):
        ServeConfig(token="short")


# ---------------------------------------------------------------------------------------
# the database: versions and migrations
def test_schema_migrates_from_version_1(tmp_path):
    from avdetect.errors import ServeError
    from avdetect.serve import store as st

    db = tmp_path / "old.sqlite3"
    conn = st.connect(db)
    st.migrate(conn, upto=1)
    report = {"provenance": {"stage_seconds": {"model": 1.5, "decode_faces": 0.5}}}
    conn.execute("INSERT INTO jobs (id, state, source, name, path, size_bytes, submitted_s, started_s, finished_s, "
                 "attempts, report_json, report_html) VALUES ('j1', 'done', 'path', 'a.mp4', '/x/a.mp4', 10, 1, 2, 4, "
                 "1, ?, '<html>')", (json.dumps(report),))
    conn.execute("INSERT INTO jobs (id, state, source, name, path, size_bytes, submitted_s, started_s) "
                 "VALUES ('j2', 'running', 'path', 'b.mp4', '/x/b.mp4', 10, 3, 5)")
    conn.close()

    store = st.JobStore(db)
    try:
        assert store.schema_version() == st.SCHEMA_VERSION == 2
        assert store.stage_summary() == {"decode_faces": (1, 0.5), "model": (1, 1.5)}  # backfilled
        assert store.recover(max_interruptions=2) == (["j2"], [])
        assert store.get("j2").state == "queued" and store.get("j1").state == "done"
        assert store.claim().id == "j2"
        assert store.recover(max_interruptions=2) == ([], ["j2"])  # the second death: failed for good
        assert store.get("j2").error_type == "ServiceInterrupted"
        with pytest.raises(ServeError, match="in use by another avdetect serve"):
            st.JobStore(db)
    finally:
        store.close()
    conn = st.connect(db)
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 'future')")
    conn.close()
    with pytest.raises(ServeError, match="schema version 99, newer"):
        st.JobStore(db)


def test_upload_names_cannot_leave_the_job_folder():
    from avdetect.serve.upload import safe_name

    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\boot.ini") == "boot.ini"
    assert safe_name("my clip (1).mp4") == "my_clip_1_.mp4"
    assert safe_name(".hidden.mp4") == "hidden.mp4"
    assert safe_name("") == safe_name("..") == "upload"
    assert safe_name("ünïcode.mkv") == "_n_code.mkv"  # ASCII only on disk; the job keeps the name as sent


def test_import_avdetect_does_not_need_fastapi():
    code = ("import sys, avdetect, avdetect.serve, avdetect.serve.store, avdetect.serve.worker; "
            "assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ---------------------------------------------------------------------------------------
# the upload page, driven in headless Chromium over the DevTools protocol
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome") if Path(p).exists()),
                None)


class CDP:
    """A minimal Chrome DevTools Protocol client (commands and events over one websocket)."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def __call__(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for ev in self.events:
                if ev.get("method") == method:
                    self.events.remove(ev)
                    return ev
            self.ws.settimeout(max(0.1, deadline - time.time()))
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} within {timeout} s")

    def js(self, expression: str):
        r = self("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")


def test_upload_page_in_headless_chromium(server, clip, work):
    if CHROMIUM is None:
        pytest.skip("no chromium binary (apt-get install chromium) to drive the upload page")
    pytest.importorskip("websocket", reason="the page test talks to Chromium with websocket-client")
    port = free_port()
    profile = work / "chromium-profile"
    browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                                "--disable-component-update", "--remote-allow-origins=*",
                                f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 30
        targets = None
        while time.time() < deadline and not targets:
            try:
                targets = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                           if t["type"] == "page"]
            except (httpx.TransportError, ValueError):
                time.sleep(0.2)
        assert targets, "chromium's DevTools endpoint did not come up"
        cdp = CDP(targets[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Network", "Runtime", "DOM"):
            cdp(f"{domain}.enable")
        cdp("Emulation.setDeviceMetricsOverride", width=1280, height=1500, deviceScaleFactor=1, mobile=False)
        cdp("Page.navigate", url=server.url + "/")
        cdp.wait_event("Page.loadEventFired")
        deadline = time.time() + 10
        while time.time() < deadline and not cdp.js("document.getElementById('limits').textContent"):
            time.sleep(0.1)  # /healthz answered: the page is wired up
        root = cdp("DOM.getDocument")["root"]["nodeId"]
        file_input = cdp("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
        cdp("DOM.setFileInputFiles", files=[str(clip)], nodeId=file_input)  # what picking a file does
        button = cdp("DOM.querySelector", nodeId=root, selector="#submit")["nodeId"]
        quad = cdp("DOM.getBoxModel", nodeId=button)["model"]["content"]
        x, y = (quad[0] + quad[4]) / 2, (quad[1] + quad[5]) / 2
        for kind in ("mousePressed", "mouseReleased"):
            cdp("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        seen, deadline = [], time.time() + 90
        while time.time() < deadline:
            st = cdp.js("document.body.dataset.state + '|' + (document.getElementById('report').dataset.loaded || '')")
            if not seen or seen[-1] != st.split("|")[0]:
                seen.append(st.split("|")[0])
            if st.startswith(("failed", "error")) or (st.startswith("done|") and st != "done|"):
                break
            time.sleep(0.1)
        error = cdp.js("document.getElementById('error').textContent")
        assert seen[-1] == "done", (seen, error)
        assert cdp.js("document.getElementById('upload-progress').value") == 100
        summary = cdp.js("document.getElementById('summary').innerText")
        assert "p(fake)" in summary and "clip.mp4" in summary, summary
        job_id = cdp.js("location.hash").split("=")[1]
        with server.client() as c:
            served = c.get(f"/v1/detections/{job_id}").json()
        assert served["state"] == "done" and served["report"]["verdict"].upper() in summary
        assert cdp.js("document.getElementById('report').srcdoc.length") > 10000  # the HTML report is shown
        time.sleep(0.5)  # let the frame paint
        png = work / "upload_page.png"
        import base64

        png.write_bytes(base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"]))
        recent = cdp.js("document.querySelectorAll('#jobs tbody tr').length")
        assert recent >= 1
        # the page and the report reached nothing but this service
        urls = [ev["params"]["request"]["url"] for ev in cdp.events if ev.get("method") == "Network.requestWillBeSent"]
        assert urls and all(u.startswith((server.url + "/", "data:", "blob:", "about:")) for u in urls), urls
        problems = [ev for ev in cdp.events if ev.get("method") in ("Runtime.exceptionThrown",)
                    or (ev.get("method") == "Runtime.consoleAPICalled" and ev["params"]["type"] == "error")]
        assert not problems, problems
        cdp.ws.close()
    finally:
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait(10)
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 1280 and img.shape[0] >= 1000
    assert img.std() > 20  # not a blank page
    # the verdict banner's colour (fake, real or unknown) is on screen
    colours = {"fake": (32, 0, 176), "real": (59, 127, 27), "unknown": (0, 109, 138)}  # BGR of app.css
    b, g, r = colours[served["report"]["verdict"]]
    hits = ((abs(img[..., 0].astype(int) - b) < 8) & (abs(img[..., 1].astype(int) - g) < 8)
            & (abs(img[..., 2].astype(int) - r) < 8)).sum()
    assert hits > 2000, hits
