"""The request guard and the gateway's settings, without servers: the guard is driven as the
ASGI middleware it is, with the settings handed to it (it does not read the environment)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from ecgscreen.imaging.limits import DEFAULT_LIMITS, MAX_BYTES, Limits, max_bytes_from_env
from service.guard import GatewayGuard
from service.settings import Settings


async def echo(scope, receive, send):
    """The app behind the guard: answers with the length of the body it received."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def settings(**changes) -> Settings:
    values = dict(triton_url="127.0.0.1:1", api_token=None, model_dir=Path("."), max_body_bytes=1000,
                  triton_timeout_s=1.0, request_timeout_s=2.0, retry_after_s=5)  # fmt: skip
    return Settings(**(values | changes))


def call(guard: GatewayGuard, method: str, path: str, **kwargs) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def upload(size: int) -> dict:
    return {"files": {"file": ("ecg.png", b"x" * size)}}


def test_a_small_upload_passes_through_whole():
    response = call(GatewayGuard(echo, settings()), "POST", "/predict", **upload(100))
    assert response.status_code == 200 and int(response.text) > 100  # the multipart body, replayed


def test_the_token_from_the_settings_is_required_except_on_open_paths():
    guard = GatewayGuard(echo, settings(api_token="s3cret"))
    missing = call(guard, "POST", "/predict", **upload(10))
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert (
        call(guard, "POST", "/predict", headers={"Authorization": "Bearer nope"}, **upload(10)).status_code
        == 401
    )
    assert (
        call(guard, "POST", "/predict", headers={"Authorization": "Bearer s3cret"}, **upload(10)).status_code
        == 200
    )
    for path in ("/livez", "/readyz", "/metrics"):
        assert call(guard, "GET", path).status_code == 200, path


def test_reading_the_screening_page_needs_no_token_but_nothing_else_under_it_is_open():
    guard = GatewayGuard(echo, settings(api_token="s3cret"))
    for path in ("/ui", "/ui/", "/ui/app.js", "/ui/i18n/th.json", "/ui/about.json"):
        assert call(guard, "GET", path).status_code == 200, path
        assert call(guard, "HEAD", path).status_code == 200, path
    assert call(guard, "POST", "/ui/about.json", **upload(10)).status_code == 401  # reading only
    assert call(guard, "GET", "/uix/app.js").status_code == 401  # the page's own prefix only
    assert call(guard, "GET", "/docs.json").status_code == 401


def test_the_body_limit_comes_from_the_settings():
    small = GatewayGuard(echo, settings(max_body_bytes=1000))
    large = GatewayGuard(echo, settings(max_body_bytes=200_000))
    refused = call(small, "POST", "/predict", **upload(100_000))
    assert refused.status_code == 413 and refused.json()["error"] == "too_large"
    assert call(large, "POST", "/predict", **upload(100_000)).status_code == 200

    async def stream():  # no Content-Length: refused once the running total passes the limit
        for _ in range(200):
            yield b"y" * 1024

    streamed = call(
        small, "POST", "/predict", content=stream(), headers={"content-type": "multipart/form-data"}
    )
    assert streamed.status_code == 413


def test_not_multipart_and_file_as_text_are_refused():
    guard = GatewayGuard(echo, settings())
    form = call(guard, "POST", "/predict", data={"file": "http://127.0.0.1:9/ecg.png"})
    assert form.status_code == 415 and form.json()["error"] == "not_multipart"
    text_part = call(guard, "POST", "/predict", files={"file": (None, "http://127.0.0.1:9/ecg.png")})
    assert text_part.status_code == 400 and text_part.json()["error"] == "file_not_uploaded"


def test_one_size_limit_for_the_gateway_and_intake(monkeypatch):
    monkeypatch.setenv("ECGSCREEN_MAX_BODY_MB", "2.5")
    assert Settings.from_env().max_body_bytes == max_bytes_from_env() == int(2.5 * 2**20)
    monkeypatch.delenv("ECGSCREEN_MAX_BODY_MB")
    assert Settings.from_env().max_body_bytes == MAX_BYTES == Limits().max_bytes == DEFAULT_LIMITS.max_bytes
    for bad in ("lots", "0", "-1"):
        with pytest.raises(ValueError, match="ECGSCREEN_MAX_BODY_MB"):
            max_bytes_from_env({"ECGSCREEN_MAX_BODY_MB": bad})


# -- what the framework's multipart parser would fail on: a 400 in our shape ------------------
def _multipart(parts: list[bytes], boundary: bytes = b"XyZ") -> dict:
    body = (
        b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts) + b"--" + boundary + b"--\r\n"
    )
    return {
        "content": body,
        "headers": {"content-type": "multipart/form-data; boundary=" + boundary.decode()},
    }


FILE_PART = b'Content-Disposition: form-data; name="file"; filename="ecg.png"\r\n\r\n\x89PNG....'


@pytest.mark.parametrize(
    "request_kwargs,reason,needle",
    [
        (_multipart([b'Content-Disposition: form-data; name="f%d"\r\n\r\nv' % i for i in range(1001)] + [FILE_PART]),
         "bad_multipart", "Too many fields"),
        (_multipart([FILE_PART], boundary=b"B" * 100_000), "bad_multipart", "cannot be read"),
        ({"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}, "bad_multipart", "boundary"),
        (_multipart([b"Content-Disposition: form-data\r\n\r\nv", FILE_PART]), "bad_multipart", "name"),
        (_multipart([b'Content-Disposition: form-data; name="clinical"\r\n\r\n' + b"x" * 100_000, FILE_PART]),
         "bad_multipart", "maximum size"),
        (_multipart([b'Content-Disposition: form-data; name="clinical"\r\n\r\n{}']), "file_missing", "'file'"),
        (_multipart([b'Content-Disposition: form-data; name="file"; filename="%d"\r\n\r\nx' % i for i in range(5)]),
         "bad_multipart", "Too many files"),
    ],
)  # fmt: skip
def test_a_form_the_framework_would_fail_on_is_a_400_in_the_error_shape(request_kwargs, reason, needle):
    response = call(
        GatewayGuard(echo, settings(max_body_bytes=1_000_000)), "POST", "/predict", **request_kwargs
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == reason and needle in body["detail"], body
    assert body["status"] == 400 and body["request_id"] == response.headers["x-request-id"]


def test_a_good_form_reaches_the_service_whole():
    kwargs = _multipart([b'Content-Disposition: form-data; name="clinical"\r\n\r\n{"age": 60}', FILE_PART])
    response = call(GatewayGuard(echo, settings()), "POST", "/predict", **kwargs)
    assert response.status_code == 200 and int(response.text) == len(kwargs["content"])


# -- back-pressure ----------------------------------------------------------------------------
def test_past_the_in_flight_limit_a_worker_answers_503_with_retry_after_at_once():
    release = asyncio.Event()
    entered = []

    async def slow(scope, receive, send):  # the service, busy with ECGs until released
        if scope["path"] == "/predict":
            entered.append(scope["path"])
            await release.wait()
        await echo(scope, receive, send)

    guard = GatewayGuard(slow, settings(max_in_flight=2, retry_after_s=7))

    async def go():
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            busy = [asyncio.create_task(client.post("/predict", **upload(10))) for _ in range(2)]
            while len(entered) < 2:
                await asyncio.sleep(0.01)
            refused = await asyncio.wait_for(client.post("/predict", **upload(10)), timeout=2)
            probe = await client.get("/readyz")  # probes are never refused
            release.set()
            answered = [await task for task in busy]
            after = await client.post("/predict", **upload(10))
            return refused, probe, answered, after

    refused, probe, answered, after = asyncio.run(go())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
    assert refused.json()["error"] == "overloaded" and "retry" in refused.json()["detail"]
    assert probe.status_code == 200 and [r.status_code for r in answered] == [200, 200]
    assert after.status_code == 200, "the slots are given back"
    assert guard.in_flight == 0


def test_the_in_flight_limit_comes_from_the_environment(monkeypatch):
    assert Settings.from_env().max_in_flight == 16
    monkeypatch.setenv("ECGSCREEN_MAX_IN_FLIGHT", "3")
    assert Settings.from_env().max_in_flight == 3
    for bad in ("0", "2.5", "many"):
        monkeypatch.setenv("ECGSCREEN_MAX_IN_FLIGHT", bad)
        with pytest.raises(ValueError, match="ECGSCREEN_MAX_IN_FLIGHT"):
            Settings.from_env()


# -- errors the framework answers itself -------------------------------------------------------
def framework(status: int, body: bytes = b"Not Found", headers=()):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": [*headers]})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize(
    "status,reason,answered", [(400, "bad_request", 400), (404, "not_found", 404), (405, "method_not_allowed", 405),
                               (429, "overloaded", 503), (500, "internal", 500), (504, "timeout", 504)]
)  # fmt: skip
def test_errors_the_framework_answers_itself_come_in_the_service_shape(status, reason, answered):
    leaky = b'{"error": "1 validation error", "detail": [{"input": "PATIENT^NAME"}]}'
    response = call(GatewayGuard(framework(status, leaky), settings()), "POST", "/predict", **upload(10))
    assert response.status_code == answered
    body = response.json()
    assert body["error"] == reason and body["status"] == answered and body["detail"]
    assert "PATIENT" not in response.text, "the framework's own words (which may echo input) are dropped"
    assert ("retry-after" in response.headers) == (answered in (503, 504))


def test_the_services_own_errors_and_the_pages_answers_pass_untouched():
    ours = framework(
        422, b'{"error": "no_layout"}', [(b"x-request-id", b"abc"), (b"content-type", b"application/json")]
    )
    response = call(GatewayGuard(ours, settings()), "POST", "/predict", **upload(10))
    assert response.status_code == 422 and response.json() == {"error": "no_layout"}
    page = call(GatewayGuard(framework(404, b"no such file"), settings()), "GET", "/ui/missing.js")
    assert page.status_code == 404 and page.text == "no such file"
