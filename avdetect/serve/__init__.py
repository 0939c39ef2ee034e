"""``avdetect serve``: detection as an HTTP service for upload and review queues.

    avdetect serve --checkpoint avdetect-small-real --port 8000 --db /var/lib/avdetect/jobs.sqlite3

* :mod:`avdetect.serve.app` -- the FastAPI routes (the only module that imports FastAPI, so
  ``import avdetect`` and this package work without the ``serve`` extra).
* :mod:`avdetect.serve.service` -- the service without HTTP: submitting files, the workers.
* :mod:`avdetect.serve.store` -- the SQLite job database (schema versions, migrations, recovery).
* :mod:`avdetect.serve.worker` -- model worker threads, one loaded model each, fed from the queue.
* :mod:`avdetect.serve.upload` -- streaming multipart uploads within a size limit.
* ``static/`` -- the upload page.
"""
from __future__ import annotations

from avdetect.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "run"]


def create_app(*args, **kwargs):
    """:func:`avdetect.serve.app.create_app` (imports FastAPI)."""
    from avdetect.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)


def run(*args, **kwargs):
    """:func:`avdetect.serve.app.run` (imports FastAPI and uvicorn)."""
    from avdetect.serve.app import run as _run

    return _run(*args, **kwargs)
