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
