"""English and Thai: the same strings in both files, and Thai drawn with a real Thai font."""

from __future__ import annotations

import json
import re
import subprocess

import pypdfium2 as pdfium
import pytest

from ecgscreen.serving.triton import PROJECT_ROOT
from ui.browsing import PHONE, SAMPLES, analyse, open_page, wait_for_heatmap

UI = PROJECT_ROOT / "service" / "ui"
THAI = re.compile(r"[\u0e00-\u0e7f]")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def strings(language: str) -> dict[str, str]:
    return json.loads((UI / "i18n" / f"{language}.json").read_text(encoding="utf-8"))


def test_both_languages_have_every_string_with_the_same_placeholders():
    english, thai = strings("en"), strings("th")
    assert set(english) == set(thai)
    for key in english:
        assert set(PLACEHOLDER.findall(english[key])) == set(PLACEHOLDER.findall(thai[key])), key
    used = set(re.findall(r'data-i18n="([\w.]+)"', (UI / "index.html").read_text()))
    used |= set(re.findall(r'data-i18n-attr="\w[\w-]*:([\w.]+)"', (UI / "index.html").read_text()))
    for script in UI.glob("*.js"):
        used |= set(re.findall(r'\bt\("([\w.]+)"', script.read_text()))
    assert used and used <= set(english), used - set(english)
    # Thai strings are Thai; what stays English on purpose: the task titles (as in the study's
    # app), abbreviations and formulas.
    same = {key for key in thai if thai[key] == english[key] and re.search("[a-z]{4}", english[key])}
    assert same <= {"task.scar.title", "task.lvef.title", "q.worked"}, same


def thai_capable_families() -> set[str]:
    out = subprocess.run(["fc-list", ":lang=th", "family"], capture_output=True, text=True, check=True).stdout
    return {name.strip() for line in out.splitlines() for name in line.split(",") if name.strip()}


def platform_fonts(page, selector: str) -> list[dict]:
    """The fonts Chromium actually drew the element's text with, and how many glyphs each."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]


@pytest.mark.integration
def test_the_thai_page_draws_thai_with_a_thai_font_not_boxes(chromium_path, browser, gateway, artefacts):
    thai_fonts = thai_capable_families()
    assert thai_fonts, "no font with Thai glyphs installed (fonts-thai-tlwg)"
    page, errors = open_page(browser, gateway.url + "/ui/", viewport=PHONE)
    try:
        page.click("button[data-lang=th]")
        page.wait_for_selector("html[lang=th]")
        assert page.get_attribute("button[data-lang=th]", "aria-pressed") == "true"
        title = page.inner_text("#screen-title")
        assert title == strings("th")["screen.title"] and THAI.search(title)
        for selector in ("#screen-title", ".drop-label > span", ".ruo-banner", "#analyse"):
            fonts = platform_fonts(page, selector)
            # A missing glyph is drawn as a box by a font without Thai (DejaVu Sans here):
            # every glyph of these all-Thai texts must come from a font that has Thai.
            assert fonts and all(f["familyName"] in thai_fonts for f in fonts), (selector, fonts)
        analyse(page, next(p for p in SAMPLES if p.suffix == ".pdf"))
        wait_for_heatmap(page, "scar")
        badge = page.inner_text("article.card[data-task=scar] .card-head .badge")
        assert badge in {strings("th")[f"risk.{level}"] for level in ("low", "medium", "high")}
        assert page.inner_text("#results-title") == strings("th")["results.title"]
        visible = page.inner_text("body")
        leftover = [key for key in strings("en") if key in visible and "." in key]
        assert not leftover, leftover  # no key shown in place of a string
        page.screenshot(path=str(artefacts / "phone-result-thai.png"), full_page=True)
        report = pdfium.PdfDocument(page.pdf(format="A4", print_background=True))
        assert len(report) == 1  # Thai wraps differently: the report still fits one page
        assert strings("th")["report.title"] in report[0].get_textpage().get_text_range()
        report.close()

        page.reload()  # the choice is remembered
        page.wait_for_selector("body[data-ready=true]")
        assert page.get_attribute("html", "lang") == "th"
        page.click("button[data-lang=en]")
        page.wait_for_selector("html[lang=en]")
        assert page.inner_text("#screen-title") == "ECG screening"
    finally:
        page.context.close()
    assert not errors, errors
