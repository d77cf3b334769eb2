"""Intake refusals on the wire: one encoder, one decoder, and they agree."""

from __future__ import annotations

import pytest

from ecgscreen.imaging.errors import INTERNAL, REASONS, IntakeError, from_wire, to_wire


@pytest.mark.parametrize("reason", [*REASONS, INTERNAL])
def test_every_reason_survives_the_round_trip(reason):
    error = IntakeError(reason, "what was wrong:\nand what to do")
    decoded = from_wire(to_wire(error))
    assert (decoded.reason, decoded.status, decoded.message) == (reason, error.status, error.message)


def test_the_wire_format_is_the_documented_one():
    assert (
        to_wire(IntakeError("truncated", "the PNG ends early")) == "intake:truncated:400: the PNG ends early"
    )
    assert IntakeError(INTERNAL, "bug").status == 500


@pytest.mark.parametrize(
    "message", ["", "Deadline Exceeded", "intake:no_such_reason:400: x", "intake:corrupt: x"]
)
def test_messages_without_a_known_refusal_decode_to_none(message):
    assert from_wire(message) is None


def test_unknown_reasons_are_refused_at_the_source():
    with pytest.raises(ValueError, match="bogus"):
        IntakeError("bogus", "x")
