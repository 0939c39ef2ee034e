"""Awkward and broken inputs through the command line, as a user runs it: outcome and time of each.

    python benchmarks/bench_bad_inputs.py [--only NAME,...] [--timeout 120] [--checkpoint NAME] [--keep DIR]

Material: about fifty inputs generated into a temporary folder with the bundled ffmpeg from one
real talking-face clip (the first of ``../shared/realfaces/real`` or ``../shared/samples``, its first
4 s; a synthetic clip when neither is there): empty, random bytes, text, truncated at half and at
4 KB, no ``moov`` atom, bit flips, audio-only wav/mp3/m4a, video-only, subtitles only, 1 frame,
2 s, variable frame rate, late audio, 5.1, 8 kHz, 96 kHz, 17x9, 4000x30, rotated, 10-bit, 4:4:4,
HEVC, VP9, AV1, ProRes, MJPEG, GIF, PNG, a JPEG renamed .mp4, MPEG-1, no face, two faces, HTML and
leading-dash file names, a folder, a symbolic link loop, a dangling link, a named pipe, an HLS
playlist and an ffconcat list (an encoder the bundled ffmpeg lacks is skipped, and said so).

Each input goes through ``avdetect probe FILE`` and ``avdetect detect FILE`` (the default
checkpoint, evidence on) in a fresh process with a time limit. Printed, one row per input: its
size, each command's exit status and one line (the error, or probe's stream summary, or the
verdict) and the wall seconds, start-up included (the ``empty.mp4`` row is that floor: imports,
and a refusal before ffmpeg runs). An input whose row is much slower than its size or its
duration justifies (a truncated file that decodes for seconds before failing) is the finding.
The machine may be shared: the load average is printed beside the table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avdetect.media import ffmpeg_exe  # noqa: E402
from avdetect.timegrid import frames_to_seconds, seconds_to_frame  # noqa: E402

MEDIA = {".mp4", ".mov", ".mpg", ".mkv", ".avi"}


def ffmpeg(*args: str, cwd: Path | None = None) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True,
                   capture_output=True, timeout=300, cwd=cwd)


def can_encode(codec: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=True).stdout
    return any(line.split()[1:2] == [codec] for line in out.splitlines() if line.startswith(" "))


def source_clip(folder: Path) -> Path:
    """4 s of a real talking-face clip (stream copy when it is an mp4, else re-encoded)."""
    for d in (ROOT.parent / "shared" / "realfaces" / "real", ROOT.parent / "shared" / "samples"):
        clips = sorted(p for p in d.iterdir() if p.suffix.lower() in MEDIA) if d.is_dir() else []
        if clips:
            out = folder / "source.mp4"
            ffmpeg("-i", str(clips[0]), "-t", "4", "-c:v", "libx264", "-c:a", "aac", "-ar", "44100", str(out))
            return out
    from avdetect.synth import ClipSpec, render_clip

    out = folder / "source.mp4"
    render_clip(out, ClipSpec(seed=1, duration=4.0, size=256))
    return out


def build_corpus(folder: Path, only: set[str] | None) -> tuple[dict[str, Path], list[str]]:
    """``{name: path}`` of the inputs (made in ``folder``) and the names skipped, with why."""
    src = source_clip(folder)
    data = src.read_bytes()
    made: dict[str, Path] = {}
    skipped: list[str] = []

    def want(name: str) -> bool:
        return only is None or name in only

    def raw(name: str, content: bytes) -> None:
        if want(name):
            (folder / name).write_bytes(content)
            made[name] = folder / name

    def enc(name: str, *args: str, codec: str | None = None, inputs: tuple[str, ...] = ("-i", str(src))) -> None:
        if not want(name):
            return
        if codec is not None and not can_encode(codec):
            skipped.append(f"{name} (the bundled ffmpeg has no {codec} encoder)")
            return
        ffmpeg(*inputs, *args, str(folder / name))
        made[name] = folder / name

    import numpy as np

    rng = np.random.default_rng(0)
    raw("empty.mp4", b"")
    raw("random_bytes.mp4", rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    raw("text.mp4", b"meeting notes, not a video\n" * 400)
    if want("truncated_half.mp4"):  # the index (moov) at the front, half of the media data after it
        ffmpeg("-i", str(src), "-c", "copy", "-movflags", "+faststart", str(folder / "faststart.mp4"))
        fast = (folder / "faststart.mp4").read_bytes()
        raw("truncated_half.mp4", fast[: len(fast) // 2])
    raw("truncated_4k.mp4", data[:4096])
    moov = data.rfind(b"moov")
    if moov > 4 and moov > data.find(b"mdat"):  # moov after the media data (no faststart): cut it off
        raw("no_moov.mp4", data[: moov - 4])
    flipped = bytearray(data)
    for pos in rng.integers(len(data) // 10, len(data), 300):
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
    raw("bit_flips.mp4", bytes(flipped))
    enc("audio_only.wav", "-vn")
    enc("audio_only.mp3", "-vn", codec="libmp3lame")
    enc("audio_only.m4a", "-vn", "-c:a", "aac")
    enc("video_only.mp4", "-an", "-c:v", "copy")
    if want("subtitles_only.mkv"):
        (folder / "s.srt").write_text("1\n00:00:00,000 --> 00:00:02,000\nhello\n")
        enc("subtitles_only.mkv", "-c:s", "srt", inputs=("-i", str(folder / "s.srt")))
    enc("one_frame.mp4", "-frames:v", "1", "-an")
    enc("two_seconds.mp4", "-t", "2", "-c", "copy")
    # 2 s at the grid's rate, then at half of it
    two_s, step = seconds_to_frame(2.0), frames_to_seconds(1)
    enc("vfr.mp4", "-vf", f"setpts='if(lt(N,{two_s}),N*{step:g},2+(N-{two_s})*{2 * step:g})/TB'", "-fps_mode", "vfr",
        "-c:v", "libx264",
        "-c:a", "aac")
    enc("late_audio.mp4", "-map", "0:v", "-map", "1:a", "-c", "copy",
        inputs=("-i", str(src), "-itsoffset", "3", "-i", str(src)))
    enc("surround_5.1.mp4", "-c:v", "copy", "-ac", "6", "-c:a", "aac")
    enc("audio_8khz.mp4", "-c:v", "copy", "-ar", "8000", "-c:a", "aac")
    enc("audio_96khz.mp4", "-c:v", "copy", "-ar", "96000", "-c:a", "aac")
    enc("size_17x9.mp4", "-vf", "scale=17:9,setsar=1", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-c:a", "copy")
    enc("size_4000x30.mp4", "-vf", "scale=4000:30,setsar=1", "-c:v", "libx264", "-c:a", "copy")
    enc("rotated.mp4", "-c", "copy", inputs=("-display_rotation:v:0", "90", "-i", str(src)))
    enc("10bit.mp4", "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-c:a", "copy")
    enc("yuv444.mp4", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-c:a", "copy")
    enc("hevc.mp4", "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1", "-c:a", "copy", codec="libx265")
    enc("vp9.webm", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus",
        codec="libvpx-vp9")
    enc("av1.mkv", "-c:v", "libsvtav1", "-preset", "12", "-c:a", "copy", codec="libsvtav1")
    enc("prores.mov", "-c:v", "prores_ks", "-profile:v", "0", "-c:a", "pcm_s16le", codec="prores_ks")
    enc("mjpeg.avi", "-c:v", "mjpeg", "-q:v", "5", "-c:a", "pcm_s16le")
    enc("animated.gif", "-vf", "fps=10,scale=160:-1", "-an")
    enc("still.png", "-frames:v", "1")
    if want("jpeg_renamed.mp4"):
        ffmpeg("-i", str(src), "-frames:v", "1", str(folder / "still.jpg"))
        raw("jpeg_renamed.mp4", (folder / "still.jpg").read_bytes())
    enc("mpeg1.mpg", "-c:v", "mpeg1video", "-q:v", "4", "-c:a", "mp2", "-ar", "44100", "-f", "mpeg")
    enc("no_face.mp4", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac", "-shortest",
        inputs=("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4", "-i", str(src)))
    enc("two_faces.mp4", "-filter_complex", "[0:v][0:v]hstack", "-c:v", "libx264", "-c:a", "copy")
    enc("<img src=x onerror=alert(1)>.mp4", "-c", "copy")
    enc("-leading-dash.mp4", "-c", "copy")
    if want("folder.mp4"):
        (folder / "folder.mp4").mkdir()
        made["folder.mp4"] = folder / "folder.mp4"
    if want("symlink_loop.mp4"):
        (folder / "symlink_loop.mp4").symlink_to(folder / "symlink_loop.mp4")
        made["symlink_loop.mp4"] = folder / "symlink_loop.mp4"
    if want("dangling_link.mp4"):
        (folder / "dangling_link.mp4").symlink_to(folder / "gone.mp4")
        made["dangling_link.mp4"] = folder / "dangling_link.mp4"
    if want("fifo.mp4"):
        os.mkfifo(folder / "fifo.mp4")  # nothing ever writes to it: a reader would wait forever
        made["fifo.mp4"] = folder / "fifo.mp4"
    if want("playlist.m3u8"):
        hls = folder / "hls"
        hls.mkdir()
        ffmpeg("-i", str(src), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "playlist.m3u8",
               cwd=hls)
        made["playlist.m3u8"] = hls / "playlist.m3u8"
    if want("list.ffconcat"):
        (folder / "list.ffconcat").write_text(f"ffconcat version 1.0\nfile '{src.name}'\nfile '{src.name}'\n")
        made["list.ffconcat"] = folder / "list.ffconcat"
    return made, skipped


def run(args: list[str], timeout: float, cwd: Path) -> tuple[int | None, str, float]:
    """Exit status (None: killed at the time limit), the line that matters, wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "avdetect", "-q", *args], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=cwd, check=False)
    except subprocess.TimeoutExpired:
        return None, f"killed after {timeout:.0f} s", time.perf_counter() - t0
    took = time.perf_counter() - t0
    err = [ln.split(": error: ", 1)[-1].replace(f"{args[-1]}: ", "", 1) for ln in p.stderr.splitlines() if ln.strip()]
    if p.returncode != 0 or not p.stdout.strip():
        return p.returncode, " / ".join(err) or "(no message)", took
    if args[0] == "probe":
        d = json.loads(p.stdout)
        v, a = d.get("video"), d.get("audio")
        parts = [f"{d['duration_s']:.2f} s"]
        parts.append(f"video {v['codec']} {v['source_size'][0]}x{v['source_size'][1]}" if v else "no video")
        parts.append(f"audio {a['codec']} {a['source_sample_rate']} Hz" if a else "no audio")
        if d.get("warnings"):
            parts.append(f"{len(d['warnings'])} warning(s)")
        return p.returncode, ", ".join(parts), took
    first = p.stdout.strip().splitlines()[0]
    verdict = first.split(": ", 1)[-1] if ": " in first else first
    return p.returncode, verdict, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated input names (default: all)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per command (default 120)")
    ap.add_argument("--checkpoint", help="checkpoint for detect (default: the shipped default)")
    ap.add_argument("--keep", metavar="DIR", help="build the inputs in DIR and keep them (default: a temporary folder)")
    ap.add_argument("--width", type=int, default=60, help="characters of each outcome shown (default 60)")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    tmp = None
    if args.keep:
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory()
        folder = Path(tmp.name)
    try:
        t0 = time.perf_counter()
        corpus, skipped = build_corpus(folder, only)
        print(f"{len(corpus)} inputs built in {time.perf_counter() - t0:.1f} s in {folder}; load average "
              f"{os.getloadavg()[0]:.1f}")
        for s in skipped:
            print(f"  skipped: {s}")
        print()
        detect_extra = ["--checkpoint", args.checkpoint] if args.checkpoint else []
        w = args.width
        print(f"| {'input':<34} | {'bytes':>9} | {'probe':<{w}} | {'s':>5} | {'detect':<{w}} | {'s':>5} |")
        print(f"|{'-' * 36}|{'-' * 11}|{'-' * (w + 2)}|{'-' * 7}|{'-' * (w + 2)}|{'-' * 7}|")
        for name, path in corpus.items():
            try:
                size = path.stat().st_size if path.is_file() else 0
            except OSError:
                size = 0
            arg = ["--", path.name] if path.name.startswith("-") else [str(path.relative_to(folder))]
            cells = []
            for cmd in (["probe", "--json"], ["detect", *detect_extra]):
                rc, line, took = run([*cmd, *arg], args.timeout, folder)
                text = f"{'timeout' if rc is None else rc}: {line}".replace("|", "/")
                cells += [text[:w], f"{took:5.1f}"]
            print(f"| {name[:34]:<34} | {size:>9} | {cells[0]:<{w}} | {cells[1]} | {cells[2]:<{w}} | {cells[3]} |",
                  flush=True)
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
