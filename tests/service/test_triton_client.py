"""How the gateway reads Triton's errors, without a server."""

from __future__ import annotations

import pytest

from ecgscreen.imaging.errors import IntakeError, to_wire
from service.triton_client import Unavailable, UpstreamError, UpstreamTimeout, triton_error


def test_an_intake_refusal_comes_back_as_the_same_intake_error():
    sent = IntakeError("pdf_encrypted", "the PDF is encrypted: export it without a password")
    message = "in ensemble 'ecg_screening', " + to_wire(sent)  # Triton prefixes its own words
    got = triton_error("StatusCode.INVALID_ARGUMENT", message)
    assert isinstance(got, IntakeError)
    assert (got.reason, got.status, got.message) == (sent.reason, sent.status, sent.message)


@pytest.mark.parametrize(
    "status,message,kind",
    [
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", UpstreamTimeout),
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", Unavailable),
        ("StatusCode.UNKNOWN", "", Unavailable),
        ("StatusCode.INTERNAL", "Request for unknown model: 'ecg_screening' is not ready", Unavailable),
        # Triton 2.51 never restarts a dead python-backend stub: another instance may answer
        # (the gateway retries), and the serve supervisor restarts Triton.
        (
            "StatusCode.INTERNAL",
            "in ensemble 'ecg_screening', Stub process 'ecg_preprocess_0_1' is not healthy.",
            Unavailable,
        ),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'ecg_screening' is not found", Unavailable),
        ("StatusCode.INTERNAL", "onnxruntime failed", UpstreamError),
        (
            "StatusCode.INVALID_ARGUMENT",
            "intake:from_the_future:418: a reason this version lacks",
            UpstreamError,
        ),
    ],
)
def test_other_triton_errors_map_to_timeouts_outages_or_failures(status, message, kind):
    assert isinstance(triton_error(status, message), kind)
