"""Speed and memory of ``detect()`` against a plain ffmpeg decode of the same file.

    python benchmarks/bench_detect.py FILE [--checkpoint DIR] [--threads 2] [--repeat 1]
    python benchmarks/bench_detect.py FILE --long 10      # also: peak memory on 1- and 10-minute videos
    python benchmarks/bench_detect.py --make-720p OUT.mp4 # a 720p 25 fps test file from a real sample
    python benchmarks/bench_detect.py FILE --loop 2 --face-backends opencv,mediapipe --forensics
        # FILE looped to 2 minutes, detect with each face backend, interleaved in one run
    python benchmarks/bench_detect.py FILE --cold --loops 0,2,10 --trees /tmp/before,. --bare-forward 20.48
        # what a user waits for: `python -m avdetect detect FILE --json OUT` in a new process
        # (default options: evidence on, default threads), with the code of each tree, before and after

``--cold``: each run is a new ``python -m avdetect detect FILE --json OUT`` started in the tree's
folder (so that tree's ``avdetect`` package is the one imported: a ``git worktree`` of an older
commit gives the "before" figures in the same run; each tree's bytecode is compiled first, as an
installed package's is), interleaved with ``ffmpeg -f null`` of the
same file, ``--repeat`` times (medians). Per tree: wall seconds, ratio to the decode, real-time
factor, the peak of the summed resident memory of the detect process and all its descendants
(face worker, ffmpeg; sampled every 50 ms), and the report's stage seconds. ``--loops`` lists
lengths in minutes FILE is looped to by stream copy (0: FILE as it is). ``--bare-forward S``
also times this checkout's model forward alone over the windows of S seconds (warm, in this
process, the default threads): the yardstick the whole cold detect of FILE cut to S seconds is
compared with.

Figures: wall time of the whole ``Detector.detect`` (decode, faces, model, localisation, report;
the model loaded once beforehand) and of ``ffmpeg -i FILE -f null -`` on the same file in the same
run (interleaved, median of ``--repeat``), their ratio (target <= 3 on 720p 25 fps), the real-time
factor (media duration / detect time; target >= 5x) and, with ``--long``, the peak resident memory
of a child process running detect on FILE looped with stream copy to 1 minute and to ``--long``
minutes (target < 1.5 GB and flat in length; ffmpeg children hold a few tens of MB each and are
not included: their ``RUSAGE_CHILDREN`` figure counts the Python pages they inherit at fork).
Weights do not change speed: without a checkpoint a randomly initialised ``--model`` (default avdetect-small) is used, and the output says so.
The machine may be shared: the load average is printed beside the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_media import make_long  # noqa: E402  (same folder)
from avdetect.media import ffmpeg_exe, load_media  # noqa: E402


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_ffmpeg_null(path: str, cpu: list | None = None) -> float:
    t, c = time.perf_counter(), _children_cpu()
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", path, "-f", "null", "-"], check=True)
    if cpu is not None:
        cpu.append(_children_cpu() - c)
    return time.perf_counter() - t


def make_detector(checkpoint: str | None, model: str, threads: int, folder: str, forensics: bool = False):
    import torch

    from avdetect.api import Detector
    from avdetect.checkpoints import default_checkpoint_dir

    torch.set_num_threads(threads)
    note = ""
    if checkpoint is None and not default_checkpoint_dir().exists():
        from avdetect.models import create_model

        checkpoint = str(create_model(model).save_pretrained(Path(folder) / model))
        note = f" (random-init {model}: speed only)"
    det = Detector.from_pretrained(checkpoint, device="cpu", forensics=forensics)
    return det, note


def make_720p(src: str, out: str) -> None:
    """Scale and pad a real sample to 1280x720, 25 fps, H.264 + AAC (one re-encode)."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", src, "-vf",
                    "scale=-2:720,pad=1280:720:(ow-iw)/2:0,fps=25", "-c:v", "libx264", "-preset", "fast", "-crf", "22",
                    "-c:a", "aac", "-ar", "44100", out], check=True)


def child_main(path: str, checkpoint: str | None, model: str, threads: int, backend: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        det, note = make_detector(checkpoint, model, threads, tmp)
        t = time.perf_counter()
        r = det.detect(path, thumbnails=True, face_backend=backend)
        seconds = time.perf_counter() - t
    print(json.dumps({
        "seconds": seconds, "duration_s": r.provenance.duration_s, "stages": r.provenance.stage_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "note": note,
        "coverage": r.face_coverage,
    }))


class _TreeRSS:
    """Peak of the summed resident memory of a process and all its descendants (polled)."""

    def __init__(self, pid: int, every: float = 0.05):
        import threading

        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss_kb(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _tree(self) -> set[int]:
        parents: dict[int, int] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, grew = {self.pid}, True
        while grew:
            more = {p for p, pp in parents.items() if pp in tree} - tree
            tree |= more
            grew = bool(more)
        return tree

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(self._rss_kb(p) for p in self._tree()))
            self._stop.wait(self.every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 1024.0  # MB


def cold_detect(tree: Path, path: str, out_json: Path) -> dict:
    """One ``python -m avdetect detect`` in a new process, run in ``tree``'s folder."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "avdetect", "detect", path, "--json", str(out_json)], cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rss = _TreeRSS(proc.pid)
    _, err = proc.communicate()
    seconds = time.perf_counter() - t
    peak = rss.stop()
    if proc.returncode:
        raise SystemExit(f"detect in {tree} failed ({proc.returncode}): {err[-2000:]}")
    r = json.loads(out_json.read_text())
    return {"seconds": seconds, "peak_mb": peak, "stages": r["provenance"]["stage_seconds"],
            "threads": r["provenance"]["parameters"].get("threads"), "verdict": r["verdict"],
            "p": r["fake_probability"]}


def bare_forward(seconds: float) -> float:
    """Seconds of this checkout's default model forward over the windows of ``seconds`` of video
    (warm: one untimed pass first), with the command line's default threads."""
    import torch

    from avdetect.api import Detector, default_threads
    from avdetect.inference import default_hop, window_starts
    from avdetect.timegrid import seconds_to_frame

    det = Detector.from_pretrained(None, device="cpu")
    torch.set_num_threads(default_threads())
    m = det.model
    T = int(m.config.window_frames)
    n = seconds_to_frame(seconds)
    windows = len(window_starts(n, T, default_hop(T)))
    mouth = torch.randint(0, 255, (1, T, 3, 96, 96), dtype=torch.uint8)
    audio = torch.randn(1, T * 640) * 0.1
    vm = am = torch.ones(1, T, dtype=torch.bool)
    with torch.inference_mode():
        m(mouth, audio, visual_mask=vm, audio_mask=am)
        t = time.perf_counter()
        for _ in range(windows):
            m(mouth, audio, visual_mask=vm, audio_mask=am)
    return time.perf_counter() - t


def compile_tree(tree: Path) -> None:
    """Write the bytecode of ``tree``'s package, as pip does when it installs one: a cold run
    then reads it, as a user's does, instead of compiling every module in each of its processes
    (about 0.2 s a process where ``PYTHONDONTWRITEBYTECODE`` is set, as on the shared machines)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "avdetect")], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def cold_main(args) -> None:
    trees = [Path(t).resolve() for t in (args.trees or ".").split(",")]
    loops = [float(x) for x in args.loops.split(",")] if args.loops else [0.0]
    for t in trees:
        compile_tree(t)
    print(f"cold `python -m avdetect detect FILE --json OUT` (default options, bytecode compiled), medians of "
          f"{args.repeat}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in loops:
            path = make_long(args.file, minutes, tmp) if minutes else args.file
            media = load_media(path)
            ff, runs = [], {t: [] for t in trees}
            for _ in range(args.repeat):  # interleaved, so machine load hits all alike
                ff.append(time_ffmpeg_null(path))
                for t in trees:
                    runs[t].append(cold_detect(t, path, Path(tmp) / "r.json"))
            t_ff = statistics.median(ff)
            print(f"\n{Path(path).name}: {media.source_size[0]}x{media.source_size[1]} {media.video_codec} @ "
                  f"{media.source_fps:g} fps, {media.duration:.1f} s; ffmpeg -f null decode {t_ff:.2f} s")
            for t in trees:
                sec = statistics.median(r["seconds"] for r in runs[t])
                peak = max(r["peak_mb"] for r in runs[t])
                last = runs[t][-1]
                print(f"  [{t.name}] detect {sec:6.2f} s  ratio {sec / t_ff:5.2f}  real time {media.duration / sec:5.2f}x  "
                      f"peak RSS (tree) {peak:6.0f} MB  threads {last['threads']}  verdict {last['verdict']} "
                      f"p {last['p']:.3f}")
                print(f"  [{t.name}] stages {last['stages']}")
        if args.bare_forward:
            cut = str(Path(tmp) / f"cut{Path(args.file).suffix}")
            subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", args.file, "-c", "copy", "-t",
                            str(args.bare_forward), cut], check=True)
            fwd = bare_forward(args.bare_forward)
            print(f"\n{args.bare_forward:g} s of {Path(args.file).name}: bare model forward (this checkout, warm) "
                  f"{fwd:.2f} s")
            for t in trees:
                sec = statistics.median(cold_detect(t, cut, Path(tmp) / "r.json")["seconds"] for _ in range(args.repeat))
                print(f"  [{t.name}] whole cold detect {sec:.2f} s = {sec / fwd:.2f}x the bare forward")


def measure_in_child(path: str, args, backend: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", path, "--model", args.model, "--threads", str(args.threads)]
    if backend:
        cmd += ["--face-backends", backend]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"child failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?")
    ap.add_argument("--checkpoint", help="checkpoint folder (default: the default checkpoint, else random init)")
    ap.add_argument("--model", default="avdetect-small", help="architecture for the random-init fallback")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the target machine's cores)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--forensics", action="store_true", help="include the training-free evidence (off by default)")
    ap.add_argument("--long", type=float, default=0.0, metavar="MINUTES")
    ap.add_argument("--loop", type=float, default=0.0, metavar="MINUTES", help="measure FILE looped to this length")
    ap.add_argument("--face-backends", default="",
                    help="comma-separated face backends, each measured (default: the checkpoint's own)")
    ap.add_argument("--make-720p", metavar="OUT", help="write a 720p 25 fps test file made from a real sample and exit")
    ap.add_argument("--cold", action="store_true", help="time cold command-line runs (see the docstring)")
    ap.add_argument("--trees", help="--cold: comma-separated checkouts to run (default: this one)")
    ap.add_argument("--loops", help="--cold: comma-separated minutes to loop FILE to (0: as it is)")
    ap.add_argument("--bare-forward", type=float, default=0.0, metavar="SECONDS",
                    help="--cold: also compare with this checkout's bare model forward over SECONDS")
    ap.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    backends: list[str | None] = [b.strip() for b in args.face_backends.split(",") if b.strip()] or [None]
    if args.child:
        child_main(args.child, args.checkpoint, args.model, args.threads, backends[0])
        return
    if args.make_720p:
        src = Path(__file__).resolve().parents[2] / "shared" / "samples" / "sadtalker_WDA_KatieHill_000.mp4"
        make_720p(args.file or str(src), args.make_720p)
        print(f"wrote {args.make_720p}")
        return
    if not args.file:
        ap.error("FILE is required")
    if args.cold:
        cold_main(args)
        return
    with tempfile.TemporaryDirectory() as loop_dir:
        if args.loop:
            args.file = make_long(args.file, args.loop, loop_dir)
        measure(args, backends)


def measure(args, backends: list[str | None]) -> None:
    media = load_media(args.file)
    print(f"file: {args.file} ({media.source_size[0]}x{media.source_size[1]} {media.video_codec} @ "
          f"{media.source_fps:g} fps, {media.duration:.2f} s); torch threads {args.threads}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        det, note = make_detector(args.checkpoint, args.model, args.threads, tmp, args.forensics)
        for b in backends:
            det.detect(args.file, face_backend=b)  # warm-up (first-call allocations, cascade and graph loads)
        ff, ff_cpu = [], []
        ours = {b: [] for b in backends}
        ours_cpu = {b: [] for b in backends}
        stages = {}
        for _ in range(args.repeat):  # interleaved, so machine load hits all alike
            ff.append(time_ffmpeg_null(args.file, ff_cpu))
            for b in backends:
                t, c = time.perf_counter(), time.process_time() + _children_cpu()
                r = det.detect(args.file, face_backend=b)
                ours[b].append(time.perf_counter() - t)
                ours_cpu[b].append(time.process_time() + _children_cpu() - c)  # python threads + ffmpeg children
                stages[b] = (r.provenance.parameters.get("face_backend"), r.provenance.stage_seconds)
    t_ff, c_ff = statistics.median(ff), statistics.median(ff_cpu)
    print(f"model                  : {det.model.config.name}{note}; evidence {'on' if args.forensics else 'off'}")
    print(f"ffmpeg -f null decode  : {t_ff:7.2f} s")
    for b in backends:
        t_ours, c_ours = statistics.median(ours[b]), statistics.median(ours_cpu[b])
        used, st = stages[b]
        tag = f"[{used}]"
        print(f"{tag} detect (whole)     : {t_ours:7.2f} s   stages: {st}")
        print(f"{tag} ratio detect/ffmpeg: {t_ours / t_ff:7.2f}   (target <= 3 on 720p 25 fps)")
        print(f"{tag} real-time factor   : {media.duration / t_ours:7.2f}x  (target >= 5x)")
        print(f"{tag} CPU seconds (less load-sensitive): ffmpeg {c_ff:.2f}, detect {c_ours:.2f} (incl. its ffmpeg "
              f"children), ratio {c_ours / c_ff:.2f}, {media.duration / c_ours:.2f} media-seconds per CPU-second")
    if args.long:
        with tempfile.TemporaryDirectory() as tmp:
            for minutes in sorted({1.0, args.long}):
                long_path = make_long(args.file, minutes, tmp)
                t_ff = time_ffmpeg_null(long_path)
                for b in backends:
                    m = measure_in_child(long_path, args, b)
                    print(f"[{b or 'checkpoint'}] {minutes:4g} min: detect {m['seconds']:.1f} s ({m['duration_s'] / m['seconds']:.1f}x "
                          f"real time; ffmpeg decode {t_ff:.1f} s, ratio {m['seconds'] / t_ff:.2f}), peak RSS python "
                          f"{m['peak_rss_mb']:.0f} MB, stages {m['stages']}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
