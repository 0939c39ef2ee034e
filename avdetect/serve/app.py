"""The HTTP layer of ``avdetect serve`` (FastAPI; this module is the only one that imports it).

=======================================  ==========================================================
``POST /v1/detections``                  a ``multipart/form-data`` upload (field ``file``) or JSON
                                         ``{"path": "..."}`` under the media root; 202 with the job
``GET /v1/detections``                   recent jobs (``?state=queued|running|done|failed&limit=N``)
``GET /v1/detections/{id}``              the job; when done, with ``report`` (the schema detect writes)
``GET /v1/detections/{id}/report.EXT``   ``json``, ``html``, ``vtt`` or ``csv`` (409 until done)
``GET /healthz``                         liveness, queue, limits (no token needed)
``GET /metrics``                         Prometheus text: jobs by state, seconds per stage
``GET /``                                the upload page (its script and style from ``/static/``)
=======================================  ==========================================================

Every error is JSON ``{"error": <one line>, "error_type": <name>}``; for a bad file the line is
the command line's message for the same file (naming the file as the client did): 404 no such
file, 413 over the upload or duration limit, 422 not decodable media, 403 a path outside the
media root, 401 a missing or wrong token. Unexpected errors are a one-line 500; their traceback
goes to the service log, never to the client.
"""
from __future__ import annotations

import hmac
import json
import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from avdetect._version import __version__
from avdetect.errors import (AVDetectError, MediaError, MediaNotFoundError, MediaTooLargeError,
                             ServeError)
from avdetect.serve.config import ServeConfig
from avdetect.serve.service import PathRefused, Service
from avdetect.serve.store import STATES
from avdetect.serve.upload import UploadRejected, receive_upload

log = logging.getLogger(__name__)

REPORT_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}
# the stored HTML report is self-contained: inline style and data: images, nothing else
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
# the report is shown in a sandboxed srcdoc frame, which inherits this policy: hence inline styles
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; frame-src blob:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'")
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
MAX_JSON_BODY = 16 * 1024


class ApiError(Exception):
    """An HTTP error with a one-line message."""

    def __init__(self, status: int, message: str, error_type: str = "ApiError", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.error_type, self.headers = status, message, error_type, headers


#: HTTP status per typed avdetect error, most specific first (the first match wins); others: 400.
_STATUSES = ((MediaTooLargeError, 413), (MediaNotFoundError, 404), (MediaError, 422), (PathRefused, 403),
             (ServeError, 503))


def status_for(err: AVDetectError) -> int:
    """The HTTP status of a typed avdetect error."""
    return next((status for kind, status in _STATUSES if isinstance(err, kind)), 400)


def _error(status: int, message: str, error_type: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type}, status_code=status, headers=headers)


def _static_text(name: str) -> str:
    return resources.files("avdetect.serve").joinpath("static", name).read_text(encoding="utf-8")


def prometheus_text(service: Service) -> str:
    """The /metrics page (Prometheus text exposition format 0.0.4)."""
    store = service.store
    lines = ["# HELP avdetect_info The service's package version and model.", "# TYPE avdetect_info gauge",
             f'avdetect_info{{version="{__version__}",model="{service.model_name}",device="{service.device}"}} 1',
             "# HELP avdetect_jobs Jobs in the database, by state.", "# TYPE avdetect_jobs gauge"]
    lines += [f'avdetect_jobs{{state="{state}"}} {n}' for state, n in store.counts().items()]
    lines += ["# HELP avdetect_workers Model worker threads alive.", "# TYPE avdetect_workers gauge",
              f"avdetect_workers {sum(w.alive for w in service.workers)}",
              "# HELP avdetect_stage_seconds Seconds per detect stage, over all finished jobs.",
              "# TYPE avdetect_stage_seconds summary"]
    for stage, (n, total) in store.stage_summary().items():
        lines += [f'avdetect_stage_seconds_sum{{stage="{stage}"}} {total:.6f}',
                  f'avdetect_stage_seconds_count{{stage="{stage}"}} {n}']
    for key, what in (("wait", "Seconds from acceptance to start"), ("run", "Seconds from start to end")):
        n, total = store.job_seconds()[key]
        lines += [f"# HELP avdetect_job_{key}_seconds {what}, over finished jobs.",
                  f"# TYPE avdetect_job_{key}_seconds summary",
                  f"avdetect_job_{key}_seconds_sum {total:.6f}", f"avdetect_job_{key}_seconds_count {n}"]
    return "\n".join(lines) + "\n"


def create_app(config: ServeConfig | None = None, service: Service | None = None) -> FastAPI:
    """The FastAPI application; builds a :class:`Service` from ``config`` unless one is given
    (building it loads the model and opens the database, so start-up errors are raised here)."""
    if service is None:
        service = Service(config or ServeConfig())
    cfg = service.config

    @asynccontextmanager
    async def lifespan(_app):
        service.start()
        log.info("serving %s (%s on %s), jobs in %s%s", service.checkpoint, service.model_name, service.device,
                 cfg.db, "; API token required" if service.token else "")
        yield
        service.shutdown(grace_s=cfg.shutdown_grace_s)

    app = FastAPI(title="avdetect", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/v1/openapi.json")
    app.state.service = service

    # -- errors: JSON, one line, never a traceback --------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_request, err: ApiError):
        return _error(err.status, err.message, err.error_type, err.headers)

    @app.exception_handler(AVDetectError)
    async def _avdetect_error(_request, err: AVDetectError):
        return _error(status_for(err), str(err), type(err).__name__)

    @app.exception_handler(UploadRejected)
    async def _upload_rejected(_request, err: UploadRejected):
        return _error(err.status, err.message, "UploadRejected")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, err: StarletteHTTPException):
        return _error(err.status_code, str(err.detail), "HTTPError", getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, err: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors()]
        return _error(422, "; ".join(parts) or "invalid request", "RequestValidationError")

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, err: Exception):
        # the server re-raises it after this answer, so its traceback reaches the service log
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(err).__name__, err)
        return _error(500, f"internal error: {type(err).__name__}: {err}", "InternalError")

    # -- auth ---------------------------------------------------------------------------------
    def require_token(request: Request) -> None:
        if service.token is None:
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), service.token.encode()):
            raise ApiError(401, "missing or wrong API token: send 'Authorization: Bearer <token>'", "Unauthorized",
                           {"WWW-Authenticate": "Bearer"})

    authed = [Depends(require_token)]

    def job_or_404(job_id: str):
        job = service.store.get(job_id)
        if job is None:
            raise ApiError(404, f"no such job: {job_id}", "JobNotFound")
        return job

    def job_view(job) -> dict:
        d = job.to_dict()
        d["queue_position"] = service.store.queue_position(job.id) if job.state == "queued" else None
        base = f"/v1/detections/{job.id}"
        d["links"] = {"self": base, **({fmt: f"{base}/report.{fmt}" for fmt in REPORT_TYPES} if job.state == "done" else {})}
        return d

    # -- the API ------------------------------------------------------------------------------
    @app.post("/v1/detections", status_code=202, dependencies=authed)
    async def submit(request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_JSON_BODY:
                    raise ApiError(413, f"JSON body larger than {MAX_JSON_BODY} bytes", "RequestTooLarge")
            try:
                data = json.loads(body or b"null")
            except ValueError as err:
                raise ApiError(400, f"the body is not JSON: {err}", "BadRequest") from None
            if not isinstance(data, dict) or "path" not in data:
                raise ApiError(400, "send JSON {\"path\": \"<file under the media root>\"} or a multipart upload",
                               "BadRequest")
            job = await run_in_threadpool(service.submit_path, data["path"])
        else:
            job_id = service.store.new_id()
            folder = service.store.upload_dir(job_id)
            try:
                got = await receive_upload(request.headers, request.stream(), folder, cfg.max_upload_bytes)
            except ClientDisconnect:
                log.info("upload for job %s abandoned: the client disconnected", job_id)
                raise ApiError(400, "the client disconnected during the upload", "ClientDisconnect") from None
            job = await run_in_threadpool(service.submit_upload, job_id, got.name, got.path, got.size_bytes)
        return JSONResponse(job_view(job), status_code=202, headers={"Location": f"/v1/detections/{job.id}"})

    @app.get("/v1/detections", dependencies=authed)
    def list_jobs(state: str | None = None, limit: int = 50):
        if state is not None and state not in STATES:
            raise ApiError(400, f"state must be one of {', '.join(STATES)}", "BadRequest")
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit must be between 1 and 1000", "BadRequest")
        return {"jobs": [job_view(j) for j in service.store.list(state, limit)], "counts": service.store.counts()}

    @app.get("/v1/detections/{job_id}", dependencies=authed)
    def get_job(job_id: str):
        job = job_or_404(job_id)
        head = json.dumps(job_view(job), ensure_ascii=False)
        text = service.store.report_json(job_id) if job.state == "done" else None
        body = head if text is None else head[:-1] + ', "report": ' + text + "}"  # the stored JSON, not re-encoded
        return Response(body, media_type="application/json")

    @app.get("/v1/detections/{job_id}/report.{fmt}", dependencies=authed)
    def get_report(job_id: str, fmt: str):
        if fmt not in REPORT_TYPES:
            raise ApiError(404, f"no report format {fmt!r}: json, html, vtt or csv", "NotFound")
        job = job_or_404(job_id)
        if job.state == "failed":
            raise ApiError(409, f"job {job_id} failed: {job.error}", job.error_type or "JobFailed")
        if job.state != "done":
            raise ApiError(409, f"job {job_id} is {job.state}: its report is not ready yet", "NotReady")
        from avdetect.report import to_csv, to_vtt

        if fmt == "html":
            body = service.store.report_html(job_id)
        else:
            body = service.store.report_json(job_id)
            if fmt != "json":
                body = (to_vtt if fmt == "vtt" else to_csv)(json.loads(body))
        stem = Path(job.name).stem or "report"
        headers = {"Content-Disposition": f'inline; filename="{_ascii(stem)}.{fmt}"'}
        if fmt == "html":
            headers["Content-Security-Policy"] = REPORT_CSP
        return Response(body, media_type=REPORT_TYPES[fmt], headers=headers)

    # -- operations -----------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz():
        ok = service.healthy()
        counts = service.store.counts()
        return JSONResponse({
            "status": "ok" if ok else "degraded", "version": __version__, "model": service.model_name,
            "device": service.device, "workers": sum(w.alive for w in service.workers),
            "queued": counts["queued"], "running": counts["running"], "auth": service.token is not None,
            "max_upload_bytes": cfg.max_upload_bytes, "max_duration_s": cfg.max_duration_s,
            "paths": cfg.media_root is not None,
        }, status_code=200 if ok else 503)

    @app.get("/metrics", dependencies=authed)
    def metrics():
        return Response(prometheus_text(service), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- the upload page -------------------------------------------------------------------------
    @app.get("/")
    def page():
        return Response(_static_text("index.html"), media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/static/{name}")
    def static(name: str):
        if name not in STATIC:
            raise ApiError(404, f"no such file: /static/{name}", "NotFound")
        return Response(_static_text(name), media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    return app


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name) or "report"


def run(config: ServeConfig, log_requests: bool = False) -> None:
    """Serve until interrupted (``avdetect serve``): load the model, open the database, listen."""
    import uvicorn

    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_config=None,
                                           access_log=log_requests, lifespan="on", server_header=False))
    server.run()
