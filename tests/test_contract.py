"""The contract module is the one place the shared names and numbers are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecgscreen.contract import CANONICAL_SIZE, FEATURE_STRIDE, TASKS, canonical_tasks

ROOT = Path(__file__).resolve().parents[1]
# What the contract owns, as it would be written out again by hand.
OWNED = {
    "the canonical size": re.compile(r"(?<![\d.])384(?![\d.])"),
    "the ImageNet statistics": re.compile(r"0\.485|0\.229"),
    "the model's name": re.compile(r"ecg_multitask"),
    "the A4 page": re.compile(r"(?<![\d.])297(\.0)?(?![\d.])"),
}


def _sources() -> list[Path]:
    files = [
        p for d in ("ecgscreen", "service") for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".yaml")
    ]
    return [p for p in files if p != ROOT / "ecgscreen" / "contract.py" and "__pycache__" not in p.parts]


@pytest.mark.parametrize("what", sorted(OWNED))
def test_no_module_writes_out_what_the_contract_owns(what):
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _sources()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if OWNED[what].search(line)
    ]
    assert not found, f"{what} written outside ecgscreen/contract.py:\n" + "\n".join(found)


def test_canonical_tasks_orders_and_validates():
    assert canonical_tasks(["lvef", "scar"]) == TASKS
    for bad in ([], ["scar", "scar"], ["ef"]):
        with pytest.raises(ValueError, match="subset"):
            canonical_tasks(bad)


def test_the_cam_is_a_whole_number_of_cells():
    assert CANONICAL_SIZE % FEATURE_STRIDE == 0
