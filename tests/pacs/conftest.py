"""PACS test fixtures: the model's identity (a real Orthanc comes from orthanc_harness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgscreen.card import ModelCard
from ecgscreen.pacs.results import ModelIdentity

MODEL_DIR = Path(__file__).resolve().parents[2] / "model_repository" / "ecg_multitask"


@pytest.fixture(scope="session")
def model_card() -> ModelCard:
    return ModelCard.load(MODEL_DIR)


@pytest.fixture(scope="session")
def model_identity(model_card) -> ModelIdentity:
    return ModelIdentity.from_card(model_card, "ecgscreen test")
