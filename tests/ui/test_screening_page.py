"""The screening page in a real browser (Debian's Chromium) against the real gateway + Triton."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from corpus import good_ecg
from PIL import Image
from pydicom.data import get_testdata_file

from ui.browsing import PHONE, SAMPLES, analyse, open_page, wait_for_heatmap

pytestmark = pytest.mark.integration

PDF_SAMPLE = next(p for p in SAMPLES if p.name == "ecg_3x4.pdf")
JPEG_SAMPLE = next(p for p in SAMPLES if p.suffix == ".jpg")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RISK_BADGES = {"low": "Low risk", "medium": "Medium risk", "high": "High risk"}


def predict(gateway, path: Path, **form) -> httpx.Response:
    return httpx.post(
        gateway.url + "/predict", files={"file": (path.name, path.read_bytes())}, data=form, timeout=60
    )


def record(artefacts: Path, name: str, values: dict) -> None:
    """Numbers measured by the tests, kept with the screenshots (timings.json, weight.json)."""
    path = artefacts / name
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(values)
    path.write_text(json.dumps(current, indent=2) + "\n")


def overflow_px(page) -> int:
    """How far the page is wider than the screen (0 when nothing scrolls sideways)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_each_sample_shows_both_cards_with_the_gateways_answer(page, gateway, artefacts, sample):
    expected = predict(gateway, sample).json()  # also warms this file type's path up
    started = time.monotonic()
    analyse(page, sample)
    seconds = time.monotonic() - started
    assert page.is_hidden("#error") and page.is_visible("#results")
    assert page.evaluate("() => document.activeElement.id") == "results"  # focus follows the answer
    for task in ("scar", "lvef"):
        card = page.locator(f"article.card[data-task={task}]")
        answer = expected[task]
        block = card.locator(".task-block.image")
        assert float(block.get_attribute("data-probability")) == pytest.approx(
            answer["probability"]["positive"]
        )
        assert f"risk-{answer['risk_level']}" in card.get_attribute("class").split()
        assert card.locator(".card-head .badge").inner_text() == RISK_BADGES[answer["risk_level"]]
        call = block.locator(".call").inner_text()
        assert ("Positive" if answer["prediction"] else "Negative") in call
        assert f"{round(answer['threshold'] * 100)} %" in call
        # The markers sit where the population average and the threshold are on the 0-100 % bar.
        average = block.locator(".marker.average").evaluate("el => parseFloat(el.style.left)")
        threshold = block.locator(".marker.threshold").evaluate("el => parseFloat(el.style.left)")
        assert average == pytest.approx(answer["average"] * 100, abs=0.01)
        assert threshold == pytest.approx(answer["threshold"] * 100, abs=0.01)
        assert card.locator(".task-block.fused").count() == 0  # no clinical features sent
    quality = page.inner_text("#quality-list")
    assert expected["preprocessing"]["source_format"] in quality and "Reading quality" in quality
    model = page.inner_text("#model-list")
    assert f"{expected['model']['name']} v{expected['model']['version']}" in model
    assert "Not for diagnosis" in model
    assert page.is_visible(".disclaimer")
    page.screenshot(path=str(artefacts / f"result-{sample.stem}.png"), full_page=True)
    if sample == PDF_SAMPLE:
        record(artefacts, "timings.json", {
            "ecg_3x4.pdf click to results shown (s)": round(seconds, 3),
            "ecg_3x4.pdf /predict fetch in the page (ms)": int(page.get_attribute("#results", "data-elapsed-ms")),
        })  # fmt: skip


def test_drag_and_drop_takes_the_file_like_the_picker(page):
    data = base64.b64encode(JPEG_SAMPLE.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            return transfer;
        }""",
        [data, JPEG_SAMPLE.name],
    )
    page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    assert "dragging" in page.get_attribute("#drop", "class")
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    assert page.inner_text("#file-name") == JPEG_SAMPLE.name
    assert page.get_attribute("#preview", "src").startswith("blob:")  # a JPEG gets a preview
    page.click("#analyse")
    page.wait_for_selector("#results:not([hidden])")
    page.click("#remove")
    assert page.is_hidden("#results") and page.is_disabled("#analyse")


def test_clinical_features_change_the_fused_result_and_name_the_imputed_ones(page, tmp_path, artefacts):
    ecg = tmp_path / "ecg.png"
    ecg.write_bytes(good_ecg("png"))
    page.click("#clinical summary")

    def run(age="", sex="", dm="", ht="", smoke="", dlp="") -> dict[str, float]:
        """Analyse with these clinical fields; the fused probability per task shown on the cards."""
        page.fill("#c-age", age)
        for field, value in (("female_gender", sex), ("dm", dm), ("ht", ht), ("smoke", smoke), ("dlp", dlp)):
            page.select_option(f"#c-{field}", value)
        analyse(page, ecg)
        assert page.is_visible("#results"), page.inner_text("#error")
        fused = page.locator(".task-block.fused")
        return {block.get_attribute("data-task"): float(block.get_attribute("data-probability"))
                for block in fused.all()}  # fmt: skip

    risky = run("82", "0", "1", "1", "1", "1")
    assert set(risky) == {"scar", "lvef"}
    assert page.inner_text("#imputed").splitlines() == [
        "Given: age 82, sex male, diabetes yes, hypertension yes, smoking yes, and dyslipidemia yes.",
        "All six clinical features were given.",
    ]
    wait_for_heatmap(page, "scar")
    page.screenshot(path=str(artefacts / "result-with-clinical-features.png"), full_page=True)
    page.locator("#results").screenshot(path=str(artefacts / "results-panel.png"))  # docs/ is cut from this
    healthy = run("25", "1", "0", "0", "0", "0")
    assert risky["scar"] > healthy["scar"] + 0.02

    run("70", dm="1")
    given, note = page.inner_text("#imputed").splitlines()
    assert given == "Given: age 70 and diabetes yes."
    assert note.startswith("Not given, so imputed with the training average: ")
    named = note.split(": ", 1)[1].rstrip(".").replace(" and ", " ").replace(",", " ").split()
    assert named == ["sex", "hypertension", "smoking", "dyslipidemia"]

    assert run() == {} and page.is_hidden("#imputed")  # nothing given: the image-only answer


def shown_heatmap(page) -> Image.Image:
    """The heatmap as the page shows it: the decoded <img> drawn onto a canvas and read back."""
    data_url = page.evaluate(
        """() => {
            const img = document.querySelector("#heatmap-img");
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            canvas.getContext("2d").drawImage(img, 0, 0);
            return canvas.toDataURL("image/png");
        }"""
    )
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")


def test_heatmap_toggle_shows_each_tasks_png_and_the_lead_and_territory_shares(page, artefacts):
    analyse(page, PDF_SAMPLE)
    wait_for_heatmap(page, "scar")
    assert page.get_attribute("#heatmap-img", "data-type") == "image/png"  # what /explain answered
    scar = shown_heatmap(page)
    assert scar.size == (768, 816)
    assert len(scar.getcolors(1 << 16) or range(1 << 16)) > 50  # a picture, not a blank
    assert page.locator("#lead-bars li").count() == 12
    assert page.locator("#territory-bars li").count() == 4
    shares = [int(v.rstrip(" %")) for v in page.locator("#lead-bars .hbar-value").all_inner_texts()]
    assert 94 <= sum(shares) <= 106  # whole percentages of shares that sum to 1
    first_src = page.get_attribute("#heatmap-img", "src")

    page.focus("#heatmap-scar")  # the toggle is a radio group: arrow keys switch it
    page.keyboard.press("ArrowRight")
    wait_for_heatmap(page, "lvef")
    assert page.get_attribute("#heatmap-img", "data-type") == "image/png"
    lvef = shown_heatmap(page)
    assert lvef.size == (768, 816) and lvef.tobytes() != scar.tobytes()
    assert page.get_attribute("#heatmap-img", "src") != first_src
    assert "LVEF < 50" in page.get_attribute("#heatmap-img", "alt")
    page.locator("#heatmap").screenshot(path=str(artefacts / "heatmap-lvef.png"))

    page.click("label[for=heatmap-scar]")  # back to scar: kept from the first time, no new call
    wait_for_heatmap(page, "scar")
    assert page.get_attribute("#heatmap-img", "src") == first_src


@pytest.mark.parametrize(
    "name,make",
    [
        ("truncated.pdf", lambda: PDF_SAMPLE.read_bytes()[: PDF_SAMPLE.stat().st_size // 2]),
        ("notes.txt", lambda: b"this is not an ECG\n" * 20),
        ("blank.png", lambda: _blank_png()),
    ],
)
def test_a_file_that_cannot_be_analysed_shows_the_reason_and_what_to_do(
    page, gateway, tmp_path, artefacts, name, make
):
    path = tmp_path / name
    path.write_bytes(make())
    refusal = predict(gateway, path)
    assert 400 <= refusal.status_code < 500
    expected = refusal.json()
    analyse(page, path)
    assert page.is_visible("#error") and page.is_hidden("#results")
    assert page.get_attribute("#error", "data-error") == expected["error"]
    assert page.inner_text("#error-title") == "Cannot analyse this file"
    assert page.inner_text("#error-reason") and page.inner_text("#error-advice")
    meta = page.inner_text("#error-meta")
    assert expected["detail"] in meta and expected["error"] in meta and str(expected["status"]) in meta
    assert page.evaluate("() => document.activeElement.id") == "error"
    page.screenshot(path=str(artefacts / f"error-{path.stem}.png"), full_page=True)
    analyse(page, PDF_SAMPLE)  # the next good file clears the error
    assert page.is_hidden("#error") and page.is_visible("#results")


def _blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (255, 255, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_report_is_one_a4_page_with_results_heatmap_model_card_and_disclaimer(page, artefacts):
    page.add_init_script(  # count print() calls; the browser's own print still runs
        "(() => { const print = window.print.bind(window);"
        " window.print = () => { window.__prints = (window.__prints || 0) + 1;"
        " window.__printTitle = document.title; print(); }; })()"
    )
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.click("#clinical summary")  # the tallest report: both answers on each card, the imputed note
    page.fill("#c-age", "67")
    page.select_option("#c-dm", "1")
    analyse(page, PDF_SAMPLE)
    wait_for_heatmap(page, "scar")
    page.click("#print")
    deadline = time.monotonic() + 10
    while not page.evaluate("() => window.__prints") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert page.evaluate("() => window.__prints") == 1
    assert page.evaluate("() => window.__printTitle").startswith("ecg-report-20")  # the suggested file name

    pdf = page.pdf(format="A4", print_background=True)  # what "Save as PDF" writes: the print stylesheet
    (artefacts / "report.pdf").write_bytes(pdf)
    document = pdfium.PdfDocument(pdf)
    assert len(document) == 1
    report = document[0]
    text = report.get_textpage().get_text_range()
    for needle in ("ECG screening report", "Myocardial Scar", "LVEF < 50", "ecg_3x4.pdf", "Where the model looked",
                   "ECG + clinical features", "imputed with the training average",
                   "ecg_multitask v1", "Research use only", "AUC", "Training data",
                   "does not replace the judgement of a cardiologist"):  # fmt: skip
        assert needle in text, needle
    for absent in ("Drag and drop", "Risk questionnaire", "Download report"):
        assert absent not in text, absent
    images = [obj for obj in report.get_objects(max_depth=5) if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE]
    assert any(obj.get_px_size() == (768, 816) for obj in images), "the heatmap is not in the report"
    report.render(scale=1.5).to_pil().save(artefacts / "report.png")
    report.close()
    document.close()


def test_page_weight_stays_small_and_loads_nothing_from_elsewhere(page, gateway, artefacts):
    entries = page.evaluate(
        "() => [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]"
        ".map((e) => [e.name, e.encodedBodySize])"
    )
    assert all(url.startswith(gateway.url + "/ui/") for url, _ in entries), entries
    total_kb = sum(size for _, size in entries) / 1024
    record(artefacts, "weight.json", {"page weight before any upload (kB)": round(total_kb, 1),
                                      "files": {url.rsplit("/ui/", 1)[1]: size for url, size in entries}})  # fmt: skip
    assert 20 < total_kb < 150, total_kb


def test_dicom_download_is_offered_exactly_when_the_gateway_has_report(page, gateway, tmp_path):
    about = httpx.get(gateway.url + "/ui/about.json").json()
    assert {"/predict", "/explain"} <= set(about["endpoints"])
    analyse(page, PDF_SAMPLE)
    has_report = "/report" in about["endpoints"]
    assert page.is_visible("#dicom") == has_report
    if has_report:  # the PACS issue's endpoint: the SR and the heatmap SC come back as .dcm files
        import pydicom

        page.click("#dicom")
        page.wait_for_selector("#dicom-links a", timeout=60_000)
        kinds = set()
        for link in page.locator("#dicom-links a").all():
            with page.expect_download() as download:
                link.click()
            dataset = pydicom.dcmread(download.value.path())
            kinds.add(link.get_attribute("data-kind"))
            assert dataset.SOPClassUID
        assert kinds == {"sr", "sc"}


def test_the_page_splits_a_multipart_related_answer_into_its_dicom_files(page):
    """The parser behind "Download DICOM", fed a STOW-shaped body of two real DICOM files."""
    files = [Path(get_testdata_file("waveform_ecg.dcm")).read_bytes(),
             next(p for p in SAMPLES if p.suffix == ".dcm").read_bytes()]  # fmt: skip
    boundary = "ecgscreen-test-boundary"
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
            for data in files
        )
        + f"--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    parts = page.evaluate(
        """async ([b64, contentType]) => {
            const { multipartParts } = await import("/ui/api.js");
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const parts = multipartParts(bytes.buffer, contentType);
            const hex = async (b) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", b))]
                .map((x) => x.toString(16).padStart(2, "0")).join("");
            return Promise.all(parts.map(async (p) => [p.type, p.bytes.length, await hex(p.bytes)]));
        }""",
        [base64.b64encode(body).decode(), content_type],
    )
    assert parts == [["application/dicom", len(d), hashlib.sha256(d).hexdigest()] for d in files]


def test_every_input_has_a_label_and_the_keyboard_reaches_the_whole_flow(page):
    unlabelled = page.evaluate(
        "() => [...document.querySelectorAll('input, select, textarea')]"
        ".filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))"
        ".map((el) => el.id || el.name)"
    )
    assert unlabelled == []
    assert page.get_by_label("Age (years)").get_attribute("id") == "c-age"

    def tab_to(element_id: str, limit: int = 25) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == element_id:
                return
        raise AssertionError(f"#{element_id} is not reachable with Tab")

    tab_to("file")  # the picker itself is a focusable input inside the drop zone
    page.set_input_files("#file", str(PDF_SAMPLE))  # (the OS file dialog is outside the page)
    tab_to("analyse")
    page.keyboard.press("Enter")
    page.wait_for_selector("#results:not([hidden])")
    assert page.evaluate("() => document.activeElement.id") == "results"
    tab_to("heatmap-scar")
    page.keyboard.press("ArrowRight")
    wait_for_heatmap(page, "lvef")
    tab_to("print")


def test_a_phone_sized_screen_needs_no_sideways_scrolling(browser, gateway, artefacts):
    page, errors = open_page(browser, gateway.url + "/ui/", viewport=PHONE)
    try:
        assert overflow_px(page) <= 0
        analyse(page, JPEG_SAMPLE)
        wait_for_heatmap(page, "scar")
        assert overflow_px(page) <= 0
        assert page.locator("#cards").bounding_box()["width"] <= PHONE["width"]
        page.screenshot(path=str(artefacts / "phone-result.png"), full_page=True)
        page.goto(gateway.url + "/ui/#questionnaire")
        page.wait_for_selector("body[data-ready=true]")
        assert page.is_visible("#q-form") and overflow_px(page) <= 0
    finally:
        page.context.close()
    assert not errors, errors


REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"


def _reading_shown(page) -> dict:
    page.wait_for_selector("#reading:not([hidden])", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#reading-img').complete")
    return page.evaluate(
        "() => { const img = document.querySelector('#reading-img');"
        " return {width: img.naturalWidth, refusal: document.querySelector('#reading').dataset.refusal}; }"
    )


def test_a_real_world_pictures_reading_is_shown_next_to_the_result(page, artefacts):
    """A phone photo nobody on the team made (tests/fixtures/realworld, BSD-3): the traces
    read are drawn over it so a person can check them against the paper."""
    analyse(page, REALWORLD / "ecg00041.jpg")
    assert page.is_visible("#results") and page.is_hidden("#error")
    shown = _reading_shown(page)
    assert shown["width"] > 600 and shown["refusal"] == ""
    assert "What was read" in page.inner_text("#reading-title")
    page.locator("#reading").screenshot(path=str(artefacts / "reading-ecg00041.png"))


def test_a_page_read_but_refused_shows_its_reading_in_the_cannot_analyse_state(page, tmp_path, artefacts):
    from ecgscreen.synth.not_ecg import not_ecg_corpus

    data = next(data for name, data, _ in not_ecg_corpus() if name == "four-leads-scrambled")
    path = tmp_path / "scrambled.png"
    path.write_bytes(data)
    analyse(page, path)
    assert page.is_visible("#error") and page.is_hidden("#results")
    assert page.get_attribute("#error", "data-error") == "unreadable"
    shown = _reading_shown(page)
    assert shown["width"] > 600 and shown["refusal"] == "unreadable"
    page.screenshot(path=str(artefacts / "error-with-reading.png"), full_page=True)
    analyse(page, REALWORLD / "ecg00001.png")  # the next file replaces the old reading
    assert page.is_hidden("#error")
