"""Browser tests of the screening page: Debian's Chromium driven by Playwright, against the
real gateway in front of the session's real Triton.

Playwright's own browser download cannot work on these machines, so the fixtures install
Debian's ``chromium`` (and ``fonts-thai-tlwg`` for the Thai page) with the project's script
and hand its path to Playwright. Screenshots and other artefacts go to ``build/ui-screenshots/``
(git-ignored), for people to look at after a run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from servers import free_ports

from ecgscreen.serving.supervisor import Gateway
from ecgscreen.serving.triton import PROJECT_ROOT
from ui.browsing import ARTEFACTS, CHROMIUM_ARGS, open_page


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium and a Thai font, installed by the project's script if missing."""
    script = PROJECT_ROOT / "scripts" / "ensure-debian-packages.sh"
    result = subprocess.run(
        ["bash", str(script), "chromium", "fonts-thai-tlwg"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"could not install chromium / fonts-thai-tlwg:\n{result.stderr}")
    path = shutil.which("chromium")
    assert path, "chromium is installed but not on PATH"
    return path


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Chromium for one test module. Not longer: while Playwright's sync API is open, its event
    loop counts as running in this thread, and later tests that call ``asyncio.run`` fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artefacts() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


@pytest.fixture(scope="session")
def gateway(triton, tmp_path_factory):
    """The real gateway (one worker, no token) in front of the session's Triton."""
    logs = tmp_path_factory.mktemp("ui-gateway")
    server = Gateway(free_ports(1)[0], triton.grpc_url, workers=1, log_file=logs / "gateway.log").start()
    yield server
    server.stop()


@pytest.fixture
def page(browser, gateway):
    """The page on a desktop-sized screen, in English; the test fails on any JavaScript error."""
    page, errors = open_page(browser, gateway.url + "/ui/")
    yield page
    page.context.close()
    assert not errors, errors
