"""An ASGI middleware in front of every API: authentication, limits, back-pressure, and the
error shape of everything the framework would answer on its own.

It runs before BentoML parses the multipart body, so

* an oversized upload is refused from its ``Content-Length`` (or, when streamed, as soon as it
  passes the limit) without being stored;
* a worker already working on ``max_in_flight`` requests answers 503 with ``Retry-After`` at
  once instead of queueing without bound (clients would time out instead);
* the body is read with the framework's own multipart parser (starlette's) under stricter
  limits first, so a form the framework would choke on (over a thousand fields, a 100 kB
  boundary, a nameless part: a 500 there) is a 400 here, and a ``file`` field sent as text
  (which BentoML would fetch as a URL) or a missing one is refused;
* any other error the framework answers itself (its 400 validation errors, 404, 405, its own
  timeouts) is rewritten into the service's JSON error shape. The service's own answers carry
  ``X-Request-ID``; that is how the two are told apart.

Health and metrics stay open: probes and Prometheus carry no token. So does reading the
screening page (GET/HEAD under ``/ui``): it is the same static page for everyone, and its own
calls to the API send the token.
"""

from __future__ import annotations

import hmac
import uuid

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.responses import JSONResponse

from .page import PAGE_PATH
from .schemas import ErrorResponse
from .settings import Settings

__all__ = ["GatewayGuard", "error_response", "OPEN_PATHS", "form_problem"]

OPEN_PATHS = ("/livez", "/readyz", "/healthz", "/metrics")
# The APIs take one file and a few short text fields; starlette's own limits (1000 fields,
# 1 MB per text field) are what a client could otherwise make the framework fail on.
MAX_FORM_FIELDS = 32
MAX_FORM_FILES = 4
MAX_TEXT_FIELD_BYTES = 64 * 1024
# Errors the framework answers itself, in our words (the original body is dropped: pydantic's
# messages may echo what was sent).
_FRAMEWORK_ERRORS = {
    400: ("bad_request", "the request could not be read: send a multipart form with the ECG in the 'file' field"),
    404: ("not_found", "no such endpoint: POST /predict, /explain or /report (see /docs.json)"),
    405: ("method_not_allowed", "use POST with a multipart form"),
    429: ("overloaded", "the gateway is busy; retry shortly"),
    504: ("timeout", "the request took too long; retry shortly"),
}  # fmt: skip


def _is_open(scope) -> bool:
    path = scope["path"]
    if path.rstrip("/") in OPEN_PATHS:
        return True
    reads_page = path == PAGE_PATH or path.startswith(PAGE_PATH + "/")
    return reads_page and scope["method"] in ("GET", "HEAD")


def error_response(
    status: int, error: str, detail: str, request_id: str | None = None, retry_after: int | None = None
) -> JSONResponse:
    body = ErrorResponse(error=error, detail=detail, status=status, request_id=request_id)
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="ecgscreen"'
    if request_id:
        headers["X-Request-ID"] = request_id
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


async def form_problem(raw_headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, str, str] | None:
    """``(status, reason, detail)`` when ``body`` is not a multipart form the APIs can take:
    unreadable (what starlette's parser rejects, under the limits above), no ``file`` part,
    or ``file`` sent as text. ``None`` when it is fine."""

    async def chunks():
        yield body

    parser = MultiPartParser(
        Headers(raw=raw_headers),
        chunks(),
        max_files=MAX_FORM_FILES,
        max_fields=MAX_FORM_FIELDS,
        max_part_size=MAX_TEXT_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        return 400, "bad_multipart", f"the multipart form cannot be read: {exc.message}"
    except Exception:  # noqa: BLE001 - whatever else the parser trips on is still the client's form
        return 400, "bad_multipart", "the multipart form cannot be read"
    try:
        file = form.get("file")
        if file is None:
            return 400, "file_missing", "send the ECG in the 'file' field (curl -F file=@ecg.pdf ...)"
        if not isinstance(file, UploadFile):
            # BentoML would fetch a 'file' given as text as a URL: intake reads only what is sent.
            return 400, "file_not_uploaded", "send the ECG as a multipart file upload in the 'file' field"
        return None
    finally:
        await form.close()


class GatewayGuard:
    """The middleware; ``settings`` are the service's own (``add_asgi_middleware(..., settings=)``).
    One per worker process, so ``in_flight`` counts that worker's requests."""

    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.token = settings.api_token.encode() if settings.api_token else None
        # The body is the file plus multipart framing and the small form fields.
        self.max_body = settings.max_body_bytes + 64 * 1024
        self.max_in_flight = settings.max_in_flight
        self.retry_after = settings.retry_after_s
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or _is_open(scope):
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex

        async def refuse(status: int, error: str, detail: str, outcome: str = "bad_input") -> None:
            await self._count(outcome)
            retry_after = self.retry_after if status == 503 else None
            await error_response(status, error, detail, request_id, retry_after)(scope, receive, send)

        headers = dict(scope.get("headers") or [])
        if self.token is not None:
            scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.token):
                await self._count("unauthorized")
                await error_response(
                    401,
                    "unauthorized",
                    "a valid 'Authorization: Bearer <token>' header is required",
                    request_id,
                )(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            limit = f"{self.max_body / 2**20:.0f} MiB"
            detail = f"the request body is {int(length) / 2**20:.1f} MiB; the limit is {limit}"
            await refuse(413, "too_large", detail, "too_large")
            return
        # Read the body (also when streamed without a length) up to the limit, then replay it.
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await refuse(413, "too_large", "the request body exceeds the limit", "too_large")
                return
        if self.in_flight >= self.max_in_flight:
            detail = (
                f"the gateway is working on {self.in_flight} requests per worker, its limit; retry shortly"
            )
            await refuse(503, "overloaded", detail, "overloaded")
            return
        content_type = headers.get(b"content-type", b"")
        if scope["method"] == "POST":
            if not content_type.lower().startswith(b"multipart/form-data"):
                detail = (
                    "send multipart/form-data with the ECG in the 'file' field (curl -F file=@ecg.pdf ...)"
                )
                await refuse(415, "not_multipart", detail)
                return
            if problem := await form_problem(scope["headers"], bytes(body)):
                await refuse(*problem)
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        self.in_flight += 1
        try:
            await self.app(scope, replay, self._in_our_shape(scope, send, request_id))
        finally:
            self.in_flight -= 1

    def _in_our_shape(self, scope, send, request_id: str):
        """``send`` that rewrites an error the framework answered itself (no ``X-Request-ID``:
        not the service's) into the service's JSON error shape; the page's own answers pass."""
        if scope["path"] == PAGE_PATH or scope["path"].startswith(PAGE_PATH + "/"):
            return send
        rewriting = False

        async def wrapped(message) -> None:
            nonlocal rewriting
            if message["type"] == "http.response.start":
                status = message["status"]
                ours = any(name.lower() == b"x-request-id" for name, _ in message.get("headers", []))
                if status >= 400 and not ours:
                    rewriting = True
                    await self._count("bad_input" if status < 500 else "error")
                    if status >= 500 and status != 504:
                        error, detail = (
                            "internal",
                            "unexpected error; the request id identifies it in the logs",
                        )
                    else:
                        error, detail = _FRAMEWORK_ERRORS.get(status, _FRAMEWORK_ERRORS[400])
                    if status == 429:  # BentoML's own concurrency limit: the same as ours
                        status = 503
                    response = error_response(status, error, detail, request_id,
                                              self.retry_after if status in (503, 504) else None)  # fmt: skip
                    await send(
                        {"type": "http.response.start", "status": status, "headers": response.raw_headers}
                    )
                    await send({"type": "http.response.body", "body": response.body})
                    return
            elif rewriting:
                return  # the framework's own body: replaced above
            await send(message)

        return wrapped

    async def _count(self, outcome: str) -> None:
        from .telemetry import gateway_metrics

        gateway_metrics().requests.labels("other", "unknown", outcome).inc()
