"""A gateway with a bearer token: the page itself is public, every call it makes carries the
token the user typed (kept in sessionStorage: this tab only, gone with it)."""

from __future__ import annotations

import httpx
import pytest
from servers import free_ports

from ecgscreen.serving.supervisor import Gateway
from ui.browsing import SAMPLES, analyse, open_page, wait_for_heatmap

pytestmark = pytest.mark.integration

TOKEN = "page-test-token-4711"
SAMPLE = next(p for p in SAMPLES if p.name == "ecg_3x4.pdf")


@pytest.fixture(scope="module")
def locked(triton, tmp_path_factory):
    logs = tmp_path_factory.mktemp("ui-locked")
    server = Gateway(free_ports(1)[0], triton.grpc_url, workers=1, log_file=logs / "gateway.log",
                     env={"ECGSCREEN_API_TOKEN": TOKEN}).start()  # fmt: skip
    yield server
    server.stop()


def test_reading_the_page_needs_no_token_but_everything_else_does(locked):
    for path in ("/ui/", "/ui/index.html", "/ui/app.js", "/ui/app.css", "/ui/i18n/th.json", "/ui/about.json"):
        assert httpx.get(locked.url + path).status_code == 200, path
        assert httpx.head(locked.url + path).status_code == 200, path
    redirect = httpx.get(locked.url + "/ui")
    assert redirect.status_code in (301, 307, 308) and redirect.headers["location"].endswith("/ui/")
    assert httpx.get(locked.url + "/ui/nothing-here.js").status_code == 404
    about = httpx.get(locked.url + "/ui/about.json").json()
    assert about["token_required"] is True and TOKEN not in httpx.get(locked.url + "/ui/about.json").text
    # Only reading the page is open: writes under /ui, the API and BentoML's own pages are not.
    assert httpx.post(locked.url + "/ui/about.json").status_code == 401
    files = {"file": ("ecg.pdf", SAMPLE.read_bytes())}
    assert httpx.post(locked.url + "/predict", files=files, timeout=60).status_code == 401
    assert httpx.get(locked.url + "/docs.json").status_code == 401
    page = httpx.get(locked.url + "/ui/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_the_page_asks_for_the_token_and_sends_it_with_every_call(browser, locked, artefacts):
    page, errors = open_page(browser, locked.url + "/ui/")
    sent = []
    page.on("request", lambda r: r.method == "POST" and sent.append(r.headers.get("authorization")))
    try:
        assert page.is_visible("#token-form")
        analyse(page, SAMPLE)  # no token yet
        assert page.get_attribute("#error", "data-error") == "unauthorized"
        assert page.inner_text("#error-reason") == "The gateway needs a valid access token."
        assert page.evaluate("() => document.activeElement.id") == "token-input"
        assert sent == [None]
        page.screenshot(path=str(artefacts / "token-needed.png"), full_page=True)

        page.fill("#token-input", "not-the-token")
        page.press("#token-input", "Enter")
        analyse(page, SAMPLE)
        assert page.get_attribute("#error", "data-error") == "unauthorized"

        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        assert page.inner_text("#token-state") == "Token set for this tab."
        analyse(page, SAMPLE)
        assert page.is_visible("#results") and page.is_hidden("#error")
        wait_for_heatmap(page, "scar")  # both /explain calls carried it too
        page.wait_for_selector("#reading:not([hidden])")  # and the reading picture's
        assert sent[1] == "Bearer not-the-token"
        assert len(sent) == 6 and all(
            header == f"Bearer {TOKEN}" for header in sent[2:]
        )  # predict, 2 x explain (heatmaps), explain (reading)

        page.reload()  # the same tab keeps the token ...
        page.wait_for_selector("body[data-ready=true]")
        assert page.input_value("#token-input") == TOKEN
        analyse(page, SAMPLE)
        assert page.is_visible("#results")
    finally:
        page.context.close()
    assert not errors, errors

    fresh, fresh_errors = open_page(browser, locked.url + "/ui/")  # ... a new tab does not
    try:
        assert fresh.input_value("#token-input") == ""
    finally:
        fresh.context.close()
    assert not fresh_errors


def test_without_a_token_configured_the_page_shows_no_token_field(page, gateway):
    assert httpx.get(gateway.url + "/ui/about.json").json()["token_required"] is False
    assert page.is_hidden("#token-form")
