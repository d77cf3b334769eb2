"""Every kind of unusable file gets its own clear refusal, fast, and intake stays healthy."""

import resource
import time

import pytest
from corpus import bad_inputs, good_ecg

from ecgscreen.imaging.errors import REASONS, IntakeError
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.imaging.sniff import sniff

CORPUS = bad_inputs()


def test_corpus_covers_at_least_15_kinds_and_every_refusal_reason_but_none():
    assert len(CORPUS) >= 15
    assert {reason for _, _, reason in CORPUS} == set(REASONS)


@pytest.mark.parametrize("name,data,reason", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_gets_the_right_refusal(name, data, reason):
    start = time.perf_counter()
    with pytest.raises(IntakeError) as caught:
        preprocess(data)
    elapsed = time.perf_counter() - start
    assert caught.value.reason == reason, str(caught.value)
    assert 400 <= caught.value.status < 500
    assert len(str(caught.value)) > 20  # a sentence a user can act on, not a code
    assert elapsed < 5.0, f"{name} took {elapsed:.1f} s to refuse"


def test_intake_stays_healthy_after_the_whole_corpus():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(2):
        for _, data, _ in CORPUS:
            with pytest.raises(IntakeError):
                preprocess(data)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB"
    assert preprocess(good_ecg("png")).info["layout"]


def test_format_comes_from_bytes_not_from_names():
    assert sniff(good_ecg("png")) == "png"
    assert sniff(good_ecg("pdf")) == "pdf"
    assert sniff(good_ecg("dcm-sc")) == "dicom"
    assert sniff(good_ecg("dcm-pdf")) == "dicom"  # its PDF starts within the first kilobyte
    assert sniff(b"junk before %PDF-1.4 header") == "pdf"
    with pytest.raises(IntakeError, match="unrecognised file signature"):
        sniff(b"PK\x03\x04" + bytes(100))  # a ZIP archive


def test_refusals_never_quote_file_contents():
    """A header names the patient: error messages must not echo the file's bytes."""
    data = b"Name: DOE^JANE ID 12345678 " * 50
    with pytest.raises(IntakeError) as caught:
        preprocess(data)
    assert "DOE" not in str(caught.value) and "12345678" not in str(caught.value)
