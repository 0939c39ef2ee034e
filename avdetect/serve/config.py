"""Settings of the detection service (``avdetect serve``), and who may call it."""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avdetect.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_ENV = "AVDETECT_API_TOKEN"
DEFAULT_DB = Path("avdetect-serve") / "jobs.sqlite3"


@dataclass
class ServeConfig:
    """Everything ``avdetect serve`` is started with.

    db: the SQLite job database (created and migrated; uploads are kept in ``uploads/`` beside it).
    media_root: a folder whose files may be submitted by path (None: uploads only).
    max_upload_bytes / max_duration_s: larger uploads, longer media are refused with 413.
    token: the API token clients send as ``Authorization: Bearer <token>``. None: from
        $AVDETECT_API_TOKEN; bound to a non-loopback address without one, a token is generated
        once and kept in ``api_token`` beside the database (its path is logged, not the token).
    auth: False turns the token off even on a non-loopback address (``--no-auth``).
    workers: model worker threads, each with its own loaded model (1 is best on a small CPU).
    keep_uploads: keep uploaded files after their job finished (default: delete them).
    max_interruptions: a job running at this many service deaths fails instead of running again.
    shutdown_grace_s: on SIGTERM/SIGINT, how long a running job may take to finish; after that it
        goes back to the queue (not counted as an interruption) and runs at the next start.
    checkpoint / device / options: the detector, as for ``avdetect detect``.
    """

    db: Path = DEFAULT_DB
    host: str = "127.0.0.1"
    port: int = 8000
    media_root: Path | None = None
    max_upload_bytes: int = 2 * 1024**3
    max_duration_s: float | None = 3600.0
    token: str | None = None
    auth: bool = True
    workers: int = 1
    keep_uploads: bool = False
    max_interruptions: int = 3
    shutdown_grace_s: float = 5.0
    checkpoint: str | None = None
    device: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.db = Path(self.db)
        if self.media_root is not None:
            root = Path(self.media_root).expanduser()
            if not root.is_dir():
                raise ConfigError("the media root is not a folder", root)
            self.media_root = root.resolve()
        if self.max_upload_bytes < 1:
            raise ConfigError(f"the upload limit must be at least 1 byte, got {self.max_upload_bytes}")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise ConfigError(f"the duration limit must be positive, got {self.max_duration_s}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.shutdown_grace_s < 0:
            raise ConfigError(f"the shutdown grace must be >= 0 s, got {self.shutdown_grace_s}")
        if self.max_interruptions < 1:
            raise ConfigError(f"max_interruptions must be >= 1, got {self.max_interruptions}")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("the API token must be at least 16 characters long")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def resolve_token(self) -> str | None:
        """The token requests must carry, or None when the API is open (see the class doc)."""
        if not self.auth:
            if not self.loopback:
                log.warning("serving on %s without an API token (--no-auth): anyone who reaches it may submit files",
                            self.host)
            return None
        token = self.token or os.environ.get(TOKEN_ENV) or None
        if token is not None:
            if len(token) < 16:
                raise ConfigError(f"the API token (${TOKEN_ENV}) must be at least 16 characters long")
            return token
        if self.loopback:
            return None
        path = self.db.parent / "api_token"
        if path.is_file():
            token = path.read_text(encoding="utf-8").strip()
            log.warning("bound to %s: API token required; using the one in %s", self.host, path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            token = secrets.token_urlsafe(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(token + "\n")
            log.warning("bound to %s: API token required; generated one and wrote it to %s (mode 0600). "
                        "Clients send 'Authorization: Bearer <token>'", self.host, path)
        if len(token) < 16:
            raise ConfigError("the API token file holds fewer than 16 characters", path)
        return token


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
