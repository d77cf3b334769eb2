"""Helpers for the browser tests: launching options, opening the page, common waits."""

from __future__ import annotations

from pathlib import Path

from ecgscreen.serving.triton import PROJECT_ROOT

ARTEFACTS = PROJECT_ROOT / "build" / "ui-screenshots"  # git-ignored; looked at by people
SAMPLES = sorted((PROJECT_ROOT / "samples").iterdir())
# Headless as root needs --no-sandbox. The network is closed here: without the
# background-networking flags Chromium keeps trying (and failing) to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def open_page(browser, url: str, viewport=DESKTOP, locale: str = "en-US"):
    """A fresh context (empty sessionStorage and localStorage) with the page loaded and wired.

    Returns the page and a list that collects its JavaScript errors; tests end with none."""
    context = browser.new_context(viewport=viewport, locale=locale, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on(
        "console", lambda msg: msg.type == "error" and not _expected(msg.text) and errors.append(msg.text)
    )
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return page, errors


def _expected(text: str) -> bool:
    # Chromium logs every 4xx answer to fetch() as a console error; the error tests cause them.
    return "Failed to load resource" in text


def analyse(page, path: Path, timeout_ms: int = 60_000) -> None:
    """Choose ``path`` in the file picker and press Analyse; wait for the results or the error."""
    page.set_input_files("#file", str(path))
    page.click("#analyse")
    page.wait_for_selector("#results:not([hidden]), #error:not([hidden])", timeout=timeout_ms)


def wait_for_heatmap(page, task: str, timeout_ms: int = 60_000) -> None:
    """Until the panel shows ``task``'s picture (decoded) and its lead and territory bars."""
    page.wait_for_selector(
        f"#heatmap[data-ready={task}] #heatmap-img[data-task={task}][data-state=loaded]", timeout=timeout_ms
    )
