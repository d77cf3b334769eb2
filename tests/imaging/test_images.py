"""Every picture format a phone or PC writes: sniffed from its bytes, decoded within the
limits, and refused with a typed reason (never ``internal``) when broken."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from corpus import good_ecg
from PIL import Image

from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.images import decode_image, has_ink
from ecgscreen.imaging.limits import DEFAULT_LIMITS, Limits
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.imaging.sniff import sniff

FORMATS = {"BMP": "bmp", "GIF": "gif", "WEBP": "webp", "HEIF": "heif", "TIFF": "tiff"}


def _page() -> Image.Image:
    """The generator's clean page (what `good_ecg("png")` holds), as RGB."""
    return Image.open(io.BytesIO(good_ecg("png"))).convert("RGB")


def _encode(image: Image.Image, pil_format: str, **options) -> bytes:
    if pil_format in ("WEBP", "HEIF"):
        options.setdefault("quality", 90)
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return _page()


@pytest.fixture(scope="module")
def reference() -> dict:
    return preprocess(good_ecg("png")).info


@pytest.mark.parametrize("pil_format", FORMATS)
def test_each_format_is_sniffed_and_read_like_the_png(page, reference, pil_format):
    data = _encode(page, pil_format)
    assert sniff(data) == FORMATS[pil_format]
    info = preprocess(data).info
    assert info["source_format"] == FORMATS[pil_format]
    assert info["layout"] == reference["layout"]
    assert info["quality"] == pytest.approx(reference["quality"], abs=0.05)


def test_sniffing_needs_the_signature_not_just_its_first_letters():
    with pytest.raises(IntakeError, match="unrecognised file signature") as caught:
        sniff(b"BMW service record\n" * 10)  # "BM", but no DIB header size after it
    assert caught.value.reason == "unsupported_format"
    with pytest.raises(IntakeError):
        sniff(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64))  # a RIFF that is not WebP
    with pytest.raises(IntakeError):
        sniff(b"\x00\x00\x00\x1cftypavif" + bytes(64))  # AVIF is not HEIF
    assert sniff(b"\x00\x00\x00\x1cftypmif1" + bytes(64)) == "heif"
    assert sniff(b"II+\x00" + bytes(16)) == "tiff"  # BigTIFF


def test_the_real_world_bmp_is_no_longer_refused_for_its_format():
    """`ecg00019.bmp` of the dev set (a public picture) was `unsupported_format`; whatever the
    layout reader makes of it now, it is read as a BMP. (Where the dev set is not beside the
    checkout, a BMP of the generator's page stands in.)"""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "realworld-dev" / "ecg00019.bmp"
    data = path.read_bytes() if path.exists() else _encode(_page(), "BMP")
    assert sniff(data) == "bmp"
    assert decode_image(data, "bmp", DEFAULT_LIMITS).shape[2] == 3


def _gif_lzw_code_size(gif: bytes, size: int) -> bytes:
    """``gif`` with its first image's LZW minimum code size set to ``size`` (valid: 2..8)."""
    data = bytearray(gif)
    pos = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # past the global palette
    while data[pos] == 0x21:  # extension blocks: introducer, label, sub-blocks, terminator
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    assert data[pos] == 0x2C  # the image descriptor
    pos += 10 + (3 * 2 ** ((data[pos + 9] & 7) + 1) if data[pos + 9] & 0x80 else 0)
    data[pos] = size
    return bytes(data)


def _broken(page: Image.Image) -> list[tuple[str, bytes, str]]:
    """(name, data, reason) for broken files of each format."""
    cases = []
    for pil_format in FORMATS:
        data = _encode(page, pil_format)
        cases.append((f"{pil_format}-truncated-half", data[: len(data) // 2], "truncated"))
    bmp = _encode(page, "BMP")
    cases.append(("BMP-header-only", bmp[:40], "truncated"))
    cases.append(("BMP-7-bits-per-pixel", bmp[:28] + struct.pack("<H", 7) + bmp[30:], "corrupt"))
    gif = _encode(page, "GIF")
    cases.append(("GIF-lzw-code-size-15", _gif_lzw_code_size(gif, 15), "corrupt"))
    webp = _encode(page, "WEBP")
    cases.append(("WEBP-header-only", webp[:40], "truncated"))
    cases.append(("WEBP-frame-zeroed", webp[:30] + bytes(30) + webp[60:], "corrupt"))
    heif = _encode(page, "HEIF")
    cases.append(("HEIF-zeroed", heif[:200] + bytes(len(heif) - 400) + heif[-200:], "corrupt"))
    tiff = _encode(page, "TIFF", compression="tiff_lzw")
    cases.append(("TIFF-lzw-zeroed", tiff[:200] + bytes(len(tiff) - 2200) + tiff[-2000:], "corrupt"))
    # decompression bombs: a header that declares 2.5 gigapixels
    huge = struct.pack("<ii", 50_000, 50_000)
    cases.append(("BMP-bomb", bmp[:18] + huge + bmp[26:], "too_many_pixels"))
    cases.append(("GIF-bomb", gif[:6] + struct.pack("<HH", 60_000, 60_000) + gif[10:], "too_many_pixels"))
    return cases


BROKEN = _broken(_page())


@pytest.mark.parametrize("name,data,reason", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_files_get_their_typed_refusal(name, data, reason):
    with pytest.raises(IntakeError) as caught:
        preprocess(data)
    assert caught.value.reason == reason, str(caught.value)
    assert 400 <= caught.value.status < 500


@pytest.mark.parametrize("pil_format", ["HEIF", "WEBP", "TIFF"])
def test_the_pixel_limit_holds_for_every_format(page, pil_format):
    with pytest.raises(IntakeError) as caught:
        preprocess(_encode(page, pil_format), limits=Limits(max_pixels=500_000))
    assert caught.value.reason == "too_many_pixels"


def _tiff(pages: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    return buffer.getvalue()


def test_a_multi_page_tiff_gives_its_first_page_that_holds_an_ecg(page, reference):
    blank = Image.new("RGB", page.size, "white")
    thumbnail = page.resize((150, 106))
    data = _tiff([blank, thumbnail, page, blank])
    assert Image.open(io.BytesIO(data)).n_frames == 4
    decoded = decode_image(data, "tiff", DEFAULT_LIMITS)
    assert has_ink(decoded) and decoded.shape[:2] == (page.height, page.width)
    assert np.array_equal(decoded, np.asarray(page))
    assert preprocess(data).info["layout"] == reference["layout"]


def test_a_tiff_page_past_the_frame_limit_is_not_looked_at(page):
    blank = Image.new("RGB", page.size, "white")
    data = _tiff([blank, blank, page])
    with pytest.raises(IntakeError) as caught:  # only the blank pages are read: not an ECG
        preprocess(data, limits=Limits(max_dicom_frames=2))
    assert caught.value.reason == "not_an_ecg"
    assert preprocess(data, limits=Limits(max_dicom_frames=3)).info["layout"]


def test_a_tiff_of_tiny_pages_is_refused_as_too_small():
    data = _tiff([Image.new("RGB", (120, 80), "white")] * 3)
    with pytest.raises(IntakeError, match="too small") as caught:
        preprocess(data)
    assert caught.value.reason == "no_layout"


def test_an_animated_gif_gives_its_first_frame(page, reference):
    data = _encode(page, "GIF", save_all=True, append_images=[Image.new("RGB", page.size, "black")])
    assert preprocess(data).info["layout"] == reference["layout"]


def test_a_16_bit_grey_scan_large_enough_to_be_reduced_is_read():
    """Pillow reduces 8-bit images only: a 300 dpi 16-bit greyscale PNG (as archives store
    scans) used to stop intake with ``ValueError: image has wrong mode``."""
    from dataclasses import replace

    from ecgscreen.synth.generate import encode_record, make_record
    from ecgscreen.synth.scan import ScanArtefacts

    base = make_record(5, 1, world_pages=False)
    record = replace(base, file_format="png", colour="grey16", dpi=300, artefacts=ScanArtefacts())
    data = encode_record(record)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    assert preprocess(data).info["layout"] == record.style.layout
