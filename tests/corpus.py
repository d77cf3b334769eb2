"""Files that must be refused, built from scratch: the intake and the gateway tests share them.

Each entry is ``(name, data, reason)`` with the ``IntakeError.reason`` the intake must give.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from reportlab.pdfgen.canvas import Canvas

from ecgscreen import dicom_codes
from ecgscreen.contract import PAGE_MM
from ecgscreen.imaging.limits import DEFAULT_LIMITS
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.not_ecg import not_ecg_corpus
from ecgscreen.synth.pdf_writer import write_pdf
from ecgscreen.synth.printout import GRID_BOX_MM, compose_page
from ecgscreen.synth.scan import ScanArtefacts

__all__ = ["bad_inputs", "corrupt_png", "four_strips_page", "good_ecg"]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _huge_png_header(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG that declares width x height pixels but carries a few bytes of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _png_chunk(b"IEND", b"")
    )


def _image_bytes(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _pdf(pages: int = 1, lines: int = 0) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, invariant=1)
    for _ in range(pages):
        for i in range(lines):  # each stroke is one page object
            canvas.line(10 + i % 500, 10, 10 + i % 500, 20 + i % 300)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _pdf_bomb(inflated: int = 200 * 1024 * 1024) -> bytes:
    """One page whose content stream inflates to ``inflated`` bytes of whitespace."""
    stream = zlib.compress(b" " * inflated, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _dicom(sop_class: str, **elements) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["corpus", sop_class])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "CORPUS^TEST"
    ds.Modality = "OT"
    for key, value in elements.items():
        setattr(ds, key, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _ct_image() -> bytes:
    pixels = np.zeros((64, 64), dtype=np.uint16)
    return _dicom(
        "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
        Rows=64, Columns=64, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=16, BitsStored=12, HighBit=11, PixelRepresentation=0, PixelData=pixels.tobytes(),
    )  # fmt: skip


def _three_lead_waveform() -> bytes:
    data = pydicom.dcmread(io.BytesIO(good_ecg("dcm-waveform")))
    group = data.WaveformSequence[0]
    samples = np.frombuffer(group.WaveformData, dtype="<i2").reshape(-1, 12)[:, 6:9]  # V1-V3
    group.ChannelDefinitionSequence = group.ChannelDefinitionSequence[6:9]
    group.NumberOfWaveformChannels = 3
    group.WaveformData = samples.astype("<i2").tobytes()
    buffer = io.BytesIO()
    data.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _non_ecg_photo() -> bytes:
    """A colourful 'holiday photo': smooth blobs and gradients, no trace rows."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:900, 0:1200] / 300.0
    image = np.zeros((900, 1200, 3))
    for c in range(3):
        for _ in range(6):
            cx, cy, f = rng.uniform(0, 4), rng.uniform(0, 3), rng.uniform(0.5, 3)
            image[..., c] += np.sin(f * (xx - cx)) * np.cos(f * (yy - cy))
    image = (image - image.min()) / np.ptp(image) * 255
    return _image_bytes(image.astype(np.uint8), "JPEG")


def _cropped_ecg() -> bytes:
    """A scan that lost its right half: the tracing runs off the picture."""
    image = Image.open(io.BytesIO(good_ecg("png")))
    return _image_bytes(np.asarray(image)[:, : image.width // 2], "PNG")


def four_strips_page() -> bytes:
    """A 3x4 page with four rhythm strips (a layout no cart prints and the reader does not
    support): a 3x4+3 page with a copy of its last strip pasted below it."""
    record = make_record(4, 0)
    record = replace(
        record,
        file_format="png",
        artefacts=ScanArtefacts(),
        style=replace(record.style, layout="3x4+3", rhythm_leads=None),
    )
    image = np.asarray(Image.open(io.BytesIO(encode_record(record))).convert("RGB"))
    px_per_mm = image.shape[1] / PAGE_MM[0]
    pitch = (GRID_BOX_MM[3] - GRID_BOX_MM[1]) / 6
    last = GRID_BOX_MM[1] + pitch * 5.55  # the last strip's baseline (printout.row_baselines_mm)
    top, bottom = (int(round((last + d) * px_per_mm)) for d in (-0.5 * pitch, 0.5 * pitch))
    return _image_bytes(np.vstack([image[:bottom], image[top:bottom], image[bottom:]]), "PNG")


@lru_cache(maxsize=8)
def good_ecg(fmt: str = "png", seed: int = 4, index: int = 0) -> bytes:
    """A clean synthetic ECG in ``fmt``."""
    record = make_record(seed, index)
    record = replace(record, file_format=fmt, artefacts=ScanArtefacts())
    return encode_record(record)


def _encrypted_pdf() -> bytes:
    record = make_record(4, 0)
    return write_pdf(compose_page(record.signal, record.style, record.header), encrypt="secret")


def corrupt_png() -> bytes:
    """A clean PNG ECG whose deflate data is zeroed: intake refuses it as `corrupt`."""
    data = bytearray(good_ecg("png"))
    start = data.index(b"IDAT") + 4
    data[start + 200 : start + 5000] = bytes(4800)  # zeroed deflate data, length intact
    return bytes(data)


def bad_inputs() -> list[tuple[str, bytes, str]]:
    """At least 20 kinds of unusable file with the refusal each must get."""
    png, jpeg, pdf, sc = (good_ecg(f) for f in ("png", "jpeg", "pdf", "dcm-sc"))
    return [
        ("zero-bytes", b"", "empty"),
        ("random-bytes", np.random.default_rng(0).bytes(4096), "unsupported_format"),
        ("text-file", b"this is not an ECG\n" * 20, "unsupported_format"),
        ("zip-archive", b"PK\x03\x04" + np.random.default_rng(1).bytes(2048), "unsupported_format"),
        ("truncated-png", png[: len(png) * 6 // 10], "truncated"),
        ("truncated-jpeg", jpeg[: len(jpeg) // 2], "truncated"),
        ("truncated-pdf", pdf[: len(pdf) // 2], "truncated"),
        ("corrupt-png", corrupt_png(), "corrupt"),
        ("png-50000x50000-header", _huge_png_header(), "too_many_pixels"),
        ("pdf-500-pages", _pdf(pages=500), "pdf_too_many_pages"),
        ("pdf-deflate-bomb", _pdf_bomb(), "pdf_bomb"),
        ("pdf-encrypted", _encrypted_pdf(), "pdf_encrypted"),
        ("pdf-blank-page", _pdf(pages=1), "pdf_blank"),
        ("pdf-30000-objects", _pdf(pages=1, lines=30_000), "pdf_too_complex"),
        ("dicom-sc-without-pixels", _dicom(dicom_codes.SOP_SECONDARY_CAPTURE), "dicom_no_ecg"),
        ("dicom-ecg-without-waveform", _dicom(dicom_codes.SOP_12_LEAD_ECG, Modality="ECG"), "dicom_no_ecg"),
        ("dicom-ct-image", _ct_image(), "dicom_wrong_sop"),
        ("dicom-truncated", sc[: len(sc) // 2], "truncated"),
        ("dicom-waveform-3-leads", _three_lead_waveform(), "waveform_invalid"),
        ("non-ecg-photo", _non_ecg_photo(), "not_an_ecg"),
        ("blank-page", _image_bytes(np.full((827, 1169, 3), 255, np.uint8), "PNG"), "not_an_ecg"),
        ("tiny-image", _image_bytes(np.zeros((40, 40, 3), np.uint8), "PNG"), "no_layout"),
        ("cropped-ecg", _cropped_ecg(), "no_layout"),
        ("3x4-with-four-strips", four_strips_page(), "unsupported_layout"),
        ("over-size-limit", b"\x89PNG\r\n\x1a\n" + bytes(DEFAULT_LIMITS.max_bytes), "too_large"),
        *not_ecg_corpus(),  # pictures that are not a complete, readable 12-lead ECG
    ]
