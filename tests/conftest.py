"""Shared fixtures: media made with ffmpeg in tmp_path, and the real sample clips when present."""
from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

SAMPLES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def tiny_checkpoint(folder: Path) -> Path:
    """A randomly initialised avdetect-tiny checkpoint (seed 0) saved in ``folder``: the small,
    fast model the detect, scan, serve and verdict tests run on."""
    import torch

    from avdetect.models import create_model

    torch.manual_seed(0)
    return create_model("avdetect-tiny").save_pretrained(folder)


def run_ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; raise with its stderr if it fails."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(cmd)}\n{proc.stderr}")


def wait_for_lines(proc, path: Path, lines: int = 1, timeout: float = 240, poll: float = 0.05) -> None:
    """Wait until ``path`` holds ``lines`` complete lines, ``proc`` has ended, or ``timeout`` s."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().count("\n") >= lines:
            return
        time.sleep(poll)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (two threads on a loaded 2-core machine are slower)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES_DIR.is_dir() or not any(SAMPLES_DIR.iterdir()):
        pytest.skip(f"real sample clips not found at {SAMPLES_DIR}")
    return SAMPLES_DIR


def sample_clips() -> list[Path]:
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in {".mp4", ".mpg", ".avi", ".mov", ".mkv"})


# Hypothesis deadlines and its "too slow" health check are timing assertions: they fail on a
# loaded machine, not on a bug.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("avdetect", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("avdetect")
except ImportError:  # hypothesis is in the test extra; tests that need it import it themselves
    pass


class HTMLCollector(HTMLParser):
    """Start tags (name, attributes) and text of an HTML page, for checks on generated reports."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)
