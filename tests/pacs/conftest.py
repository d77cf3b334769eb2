"""PACS test fixtures: the model's identity (a real Orthanc comes from orthanc_harness)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgscreen.pacs.results import ModelIdentity

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "model_repository" / "ecg_multitask" / "model_card.json"


@pytest.fixture(scope="session")
def model_card() -> dict:
    return json.loads(CARD.read_text())


@pytest.fixture(scope="session")
def model_identity(model_card) -> ModelIdentity:
    return ModelIdentity.from_card(model_card, "ecgscreen test")
