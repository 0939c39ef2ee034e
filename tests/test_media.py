"""load_media on files made with ffmpeg: facts, the 25 fps grid, 16 kHz audio, and typed errors."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from avdetect import load_media
from avdetect.errors import (
    CorruptMediaError,
    MediaError,
    MediaNotFoundError,
    MediaTimeoutError,
    NoStreamsError,
    NotMediaError,
)
from avdetect.media import _FFmpegPipe
from conftest import run_ffmpeg

SINE = "sine=frequency=440:sample_rate={sr}:duration={d}"
TESTSRC = "testsrc2=size={w}x{h}:rate={r}:duration={d}"


def _make(tmp_path, name, *args):
    path = tmp_path / name
    run_ffmpeg(*args, str(path))
    return path


def _assert_grid(media, duration):
    assert abs(media.n_frames - duration * 25) <= 1
    frames = media.read_frames()
    assert frames.shape == (media.n_frames, *media.frame_shape)
    assert frames.dtype == np.uint8


def _assert_audio(media, duration):
    assert abs(media.n_samples / 16000 - duration) <= 0.001
    audio = media.audio
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == media.n_samples
    assert np.abs(audio).max() > 0.1  # the tone is there


def test_mp4_with_audio(tmp_path):
    p = _make(tmp_path, "av.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=320, h=240, r=25, d=4),
              "-f", "lavfi", "-i", SINE.format(sr=44100, d=4), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest")
    m = load_media(p)
    assert m.has_video and m.has_audio
    assert m.video_codec == "h264" and m.audio_codec == "aac"
    assert m.source_size == (320, 240) and m.working_size == (320, 240)
    assert m.source_fps == 25 and m.source_sample_rate == 44100
    assert abs(m.duration - 4.0) < 0.05
    _assert_grid(m, 4.0)
    _assert_audio(m, 4.0)
    assert len(m.sha256) == 64
    d = m.info.to_dict()
    assert d["n_frames"] == m.n_frames and d["has_audio"] is True


def test_file_hash_ahead_is_computed_once_for_every_view(tmp_path, monkeypatch):
    """``hash_ahead`` hashes the file in a thread; ``sha256`` then waits for that one hash, the
    same for every decode-size view of the file (at_max_side), and equal to hashlib's. A read
    error in the thread is raised by ``sha256``."""
    import hashlib

    import avdetect.media as media_mod

    p = _make(tmp_path, "h.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=640, h=360, r=25, d=1), "-c:v", "libx264")
    calls = []
    real = media_mod.sha256_file
    monkeypatch.setattr(media_mod, "sha256_file", lambda path, *a: calls.append(path) or real(path, *a))
    m = load_media(p)
    view = m.at_max_side(320)
    assert view is not m and view.working_size == (320, 180)
    view.hash_ahead()
    view.hash_ahead()  # started once
    assert m.sha256 == view.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert calls == [m.info.path]  # one hash for both views
    gone = load_media(p)
    p.unlink()
    gone.hash_ahead()
    with pytest.raises(FileNotFoundError):
        gone.sha256


def test_mp4_without_audio_30fps_resampled(tmp_path):
    p = _make(tmp_path, "v.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=640, h=360, r="30000/1001", d=3), "-c:v", "libx264")
    m = load_media(p)
    assert m.has_video and not m.has_audio
    assert abs(m.source_fps - 29.97) < 0.01
    _assert_grid(m, 3.0)
    with pytest.raises(MediaError, match="no audio"):
        m.audio


def test_resized_at_decode_time(tmp_path):
    p = _make(tmp_path, "big.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=1920, h=1080, r=25, d=1), "-c:v", "libx264")
    m = load_media(p, max_side=640)
    assert m.source_size == (1920, 1080)
    assert m.working_size == (640, 360)
    assert m.read_frames(0, 3).shape == (3, 360, 640, 3)


def test_rotation_is_applied(tmp_path):
    src = _make(tmp_path, "src.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=320, h=240, r=25, d=1), "-c:v", "libx264")
    p = tmp_path / "rot.mp4"
    run_ffmpeg("-display_rotation:v:0", "90", "-i", str(src), "-c", "copy", str(p))
    m = load_media(p)
    assert m.source_size == (240, 320)
    assert m.read_frames(0, 1).shape == (1, 320, 240, 3)


@pytest.mark.parametrize(
    "name,sr,channels,duration",
    [("a.wav", 22050, 6, 2.5), ("a.mp3", 8000, 1, 1.3), ("a.flac", 48000, 2, 2.0), ("a.m4a", 44100, 2, 2.0), ("b.wav", 11025, 3, 0.7)],
)
def test_audio_only_files(tmp_path, name, sr, channels, duration):
    p = _make(tmp_path, name, "-f", "lavfi", "-i", SINE.format(sr=sr, d=duration), "-ac", str(channels))
    m = load_media(p)
    assert not m.has_video and m.has_audio
    assert m.n_frames == 0
    assert m.source_sample_rate == sr and m.source_channels == channels
    # decoders may pad a final frame (mp3, aac): within one codec frame of the requested length
    assert abs(m.duration - duration) < 0.08
    _assert_audio(m, m.n_samples / 16000)
    with pytest.raises(MediaError, match="no video"):
        m.read_frames()


def test_audio_is_aligned_and_resampled_correctly(tmp_path):
    """A 1 kHz tone at 44.1 kHz stereo comes out as a 1 kHz tone at 16 kHz mono."""
    p = _make(tmp_path, "t.wav", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100:duration=1", "-ac", "2")
    a = load_media(p).audio
    spec = np.abs(np.fft.rfft(a[1000:9000]))
    peak_hz = np.argmax(spec) * 16000 / 8000
    assert abs(peak_hz - 1000) <= 4


def test_late_starting_audio_is_padded_at_start(tmp_path):
    """Audio that starts 0.5 s after the video is silence for its first 0.5 s on our time axis."""
    p = _make(tmp_path, "late.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=160, h=120, r=25, d=3),
              "-f", "lavfi", "-i", SINE.format(sr=16000, d=2.5), "-af", "adelay=500:all=1",
              "-c:v", "libx264", "-c:a", "aac")
    m = load_media(p)
    a = m.audio
    assert np.abs(a[: int(0.45 * 16000)]).max() < 0.02
    assert np.abs(a[int(0.6 * 16000) : int(1.0 * 16000)]).max() > 0.1


@pytest.mark.parametrize("late", ["audio", "video"])
def test_a_late_stream_is_measured_and_warned(tmp_path, late):
    """A stream that starts 3 s after the other (by its timestamps, not silence in its data) is
    measured from its first packet (decoding pads it, so the decoded audio always starts at 0) and
    warned about, in the report's warnings and in probe; streams starting together are not."""
    from avdetect.media import stream_start_gap, stream_start_warning
    from avdetect.verdict import quality_warnings

    v = ["-f", "lavfi", "-i", TESTSRC.format(w=64, h=48, r=25, d=5 if late == "audio" else 2)]
    a = ["-f", "lavfi", "-i", SINE.format(sr=16000, d=2 if late == "audio" else 5)]
    inputs = v + ["-itsoffset", "3"] + a if late == "audio" else ["-itsoffset", "3"] + v + a
    m = load_media(_make(tmp_path, "late.mp4", *inputs, "-c:v", "libx264", "-c:a", "aac"))
    gap = stream_start_gap(m)
    assert abs(abs(gap) - 3.0) < 0.1 and (gap > 0) == (late == "audio")
    assert abs(m.duration - 5.0) < 0.1 and abs(m.n_frames - 125) <= 2
    text = stream_start_warning(m)
    assert text.startswith((f"the {late} starts 2.9", f"the {late} starts 3.0"))
    codes = [w.code for w in quality_warnings(m.info, 1.0, True, None)]
    assert codes.count("stream_start_offset") == 1
    from avdetect.probe import probe

    assert text in probe(m.path, faces=False)["warnings"]
    together = load_media(_make(tmp_path, "together.mp4", *v, *a, "-c:v", "libx264", "-c:a", "aac", "-shortest"))
    assert abs(stream_start_gap(together)) < 0.1 and stream_start_warning(together) is None
    assert "stream_start_offset" not in [w.code for w in quality_warnings(together.info, 1.0, True, None)]


def test_container_start_offset_is_not_cut_off(tmp_path):
    """MPEG-TS starts its clock at 1.4 s and Matroska can start anywhere: the times of the streams
    are from the container start, so the video keeps its full length (it used to lose the offset
    at its end), and a Matroska file with a start offset is not taken for a truncated one."""
    src = _make(tmp_path, "src.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=64, h=48, r=25, d=4), "-f", "lavfi", "-i",
                SINE.format(sr=16000, d=4), "-c:v", "libx264", "-c:a", "aac", "-shortest")
    for name, extra in (("clip.ts", []), ("clip.mkv", ["-output_ts_offset", "2"])):
        m = load_media(_make(tmp_path, name, "-i", str(src), "-c", "copy", *extra))
        video = next(s for s in m.streams if s.kind == "video")
        assert abs(video.start) < 0.1 and abs(video.end - 4.0) < 0.1, (name, video)
        assert abs(m.n_frames - 100) <= 2 and abs(m.duration - 4.0) < 0.1


def test_vfr_is_resampled_onto_the_grid(tmp_path):
    """Frames carry their source index as brightness; the grid frame at time t shows the
    source frame on screen at t (60 frames at 30 fps, then 30 frames at 10 fps)."""
    p = tmp_path / "vfr.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=black:size=64x64:rate=30:duration=3",
               "-vf", "geq=lum='N*2.5':cb=128:cr=128,setpts='if(lt(N,60),N/30,2+(N-60)/10)/TB'",
               "-fps_mode", "vfr", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(p))
    m = load_media(p)
    assert m.variable_frame_rate
    # a fact, not a media warning: the report's warnings state it once, from the fact
    assert not any("variable frame rate" in w for w in m.warnings)
    from avdetect.verdict import quality_warnings

    said = [w.code for w in quality_warnings(m.info, 1.0, True, None) if "variable frame rate" in w.message]
    assert said == ["variable_frame_rate"]
    # the last frame starts at 4.9 s; its duration is whatever the muxer wrote
    assert 4.9 < m.duration <= 5.01
    frames = m.read_frames()
    assert abs(len(frames) - m.duration * 25) <= 1
    green = frames[..., 1].mean(axis=(1, 2))
    shown = (green * 219 / 255 + 16) / 2.5  # limited-range luma back to the source index
    for i in (7, 30, 52, 60, 77, 110):
        t = i / 25
        src = t * 30 if t < 2 else 60 + (t - 2) * 10
        assert abs(shown[i] - src) <= 1.01, (i, t, shown[i], src)


def test_one_frame_file(tmp_path):
    p = _make(tmp_path, "one.mp4", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-frames:v", "1", "-c:v", "libx264")
    m = load_media(p)
    assert m.n_frames == 1
    assert m.read_frames().shape == (1, 120, 160, 3)


def test_windows_cover_exactly_and_restart_anywhere(tmp_path):
    p = _make(tmp_path, "w.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=160, h=120, r=25, d=3), "-c:v", "libx264", "-qp", "0")
    m = load_media(p)
    starts, total = [], 0
    for start, win in m.iter_windows(size=16):
        starts.append(start)
        total += len(win)
        assert len(win) <= 16
    assert starts == list(range(0, 75, 16)) and total == 75
    whole = m.read_frames()
    part = m.read_frames(40, 50)  # decoding from a seek point gives the same frames
    assert np.abs(part.astype(int) - whole[40:50].astype(int)).mean() < 2.0
    assert len(list(m.iter_frames(70, 1000))) == 5


def test_read_audio_span_matches_whole(tmp_path):
    p = _make(tmp_path, "s.wav", "-f", "lavfi", "-i", "sine=frequency=523:sample_rate=16000:duration=3")
    m = load_media(p)
    span = m.read_audio(1.0, 1.5)
    assert len(span) == 8000
    whole = m.audio
    assert np.allclose(span, whole[16000:24000], atol=1e-4)


def test_abandoned_iteration_kills_ffmpeg(tmp_path):
    p = _make(tmp_path, "k.mp4", "-f", "lavfi", "-i", TESTSRC.format(w=160, h=120, r=25, d=4), "-c:v", "libx264")
    m = load_media(p)
    it = m.iter_windows(size=4)
    next(it)
    it.close()  # the finally block must reap the process
    out = subprocess.run(["pgrep", "-f", str(p)], capture_output=True, text=True)
    assert out.stdout.strip() == ""


# --- bad input ---------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(MediaNotFoundError, match="no such file"):
        load_media(tmp_path / "nope.mp4")
    with pytest.raises(MediaNotFoundError, match="not a regular file"):
        load_media(tmp_path)


def test_links_and_special_files_are_named(tmp_path):
    """A symbolic link loop, a dangling link, a named pipe (never opened: that would block) and a
    device are each one line saying what they are, not "no such file" for all."""
    import os

    loop = tmp_path / "loop.mp4"
    loop.symlink_to(tmp_path / "loop2.mp4")
    (tmp_path / "loop2.mp4").symlink_to(loop)
    with pytest.raises(MediaNotFoundError, match=r"symbolic link loop \(ELOOP"):
        load_media(loop)
    dangling = tmp_path / "dangling.mp4"
    dangling.symlink_to(tmp_path / "gone.mp4")
    with pytest.raises(MediaNotFoundError, match="no such file: a dangling symbolic link"):
        load_media(dangling)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(MediaNotFoundError, match=r"not a regular file \(a named pipe"):
        load_media(fifo)
    assert time.perf_counter() - t0 < 5
    if os.path.exists("/dev/zero"):
        with pytest.raises(MediaNotFoundError, match=r"not a regular file \(a character device\)"):
            load_media("/dev/zero")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(NotMediaError, match="empty"):
        load_media(p)


def test_text_renamed_mp4(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("these are meeting notes, not a video\n" * 20)
    with pytest.raises(NotMediaError) as info:
        load_media(p)
    assert str(p) in str(info.value) and "\n" not in str(info.value)


def test_random_bytes(tmp_path):
    p = tmp_path / "noise.mov"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises((NotMediaError, CorruptMediaError)):
        load_media(p)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_mp4(tmp_path, faststart):
    args = ["-f", "lavfi", "-i", TESTSRC.format(w=320, h=240, r=25, d=4), "-f", "lavfi", "-i", SINE.format(sr=44100, d=4),
            "-c:v", "libx264", "-c:a", "aac", "-shortest"]
    if faststart:
        args += ["-movflags", "+faststart"]
    full = _make(tmp_path, "full.mp4", *args)
    data = full.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2] if faststart else data[:40_000])
    with pytest.raises(CorruptMediaError, match="truncated"):
        load_media(p)


def test_no_audio_no_video(tmp_path):
    p = tmp_path / "subs.mkv"
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    run_ffmpeg("-i", str(srt), "-c:s", "srt", str(p))
    with pytest.raises(NoStreamsError, match="no video or audio"):
        load_media(p)


def test_stalled_decoder_is_killed(tmp_path):
    pipe = _FFmpegPipe([sys.executable, "-c", "import time; time.sleep(30)"], "x.mp4", stall_timeout=0.5)
    t0 = time.perf_counter()
    with pytest.raises(MediaTimeoutError, match="no data"):
        pipe.readinto(memoryview(bytearray(100)))
    assert time.perf_counter() - t0 < 10
    assert pipe.proc.poll() is not None


def test_errors_are_one_line_and_name_the_file(tmp_path):
    p = tmp_path / "x.mp4"
    p.write_bytes(b"\x00" * 1000)
    with pytest.raises(MediaError) as info:
        load_media(p)
    msg = str(info.value)
    assert msg.startswith(str(p)) and "\n" not in msg


def test_ffmpeg_messages_carry_no_memory_addresses():
    from avdetect.media import _classify_open_error, ffmpeg_lines

    log = "[h264 @ 0x55d0c3a1b2c0] error while decoding MB 3 4\n\n  [aac @ 0x7f3e] Invalid data found  \nplain"
    assert ffmpeg_lines(log) == ["[h264] error while decoding MB 3 4", "[aac] Invalid data found", "plain"]
    a = _classify_open_error("[mov,mp4 @ 0x5600aa] moov atom not found\nx.mp4: Invalid data found when processing input", "x.mp4")
    b = _classify_open_error("[mov,mp4 @ 0x7ffe01] moov atom not found\nx.mp4: Invalid data found when processing input", "x.mp4")
    assert str(a) == str(b) and "0x" not in str(a)  # reruns give the same line, byte for byte
