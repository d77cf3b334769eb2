"""Clinical features and the fusion head, without servers: parsing names each bad key, the
card's means fill the missing features, and fusion.onnx answers as the exported head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ecgscreen.card import ModelCard
from ecgscreen.contract import CLINICAL_FEATURES
from service.clinical import ClinicalFeatures, FusionHead, parse_clinical

MODEL_DIR = Path(__file__).resolve().parents[2] / "model_repository" / "ecg_multitask"
CARD = ModelCard.load(MODEL_DIR)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_clinical_field_means_no_fusion(value):
    assert parse_clinical(value) is None


def test_clinical_features_parse_from_json_or_an_already_decoded_dict():
    assert parse_clinical('{"age": 67, "dm": 1, "ht": true}') == ClinicalFeatures(age=67, dm=True, ht=True)
    assert parse_clinical({"smoke": "false"}).smoke is False


@pytest.mark.parametrize(
    "value,needle",
    [('{"age": 7}', "age"), ('{"dm": "maybe"}', "dm"), ('{"height": 180}', "height"), ("{not json", "JSON"),
     ("[1, 2]", "JSON object")],
)  # fmt: skip
def test_bad_clinical_features_name_what_is_wrong(value, needle):
    with pytest.raises(ValueError, match=needle):
        parse_clinical(value)


def test_fusion_fills_missing_features_with_the_cards_means_and_says_which():
    head = FusionHead(MODEL_DIR, CARD)
    assert head.available
    embedding = np.random.default_rng(0).random(512).astype(np.float32)
    fused, imputed = head(embedding, ClinicalFeatures(age=70, dm=True))
    assert imputed == ["female_gender", "ht", "smoke", "dlp"] and set(fused) == {"scar", "lvef"}
    # the same as fusion.onnx fed the means by hand
    means = CARD.clinical.imputation_means
    row = [70.0, means["female_gender"], 1.0, means["ht"], means["smoke"], means["dlp"]]
    session = ort.InferenceSession(str(MODEL_DIR / "fusion.onnx"), providers=["CPUExecutionProvider"])
    scar, lvef = session.run(None, {"embedding": embedding[None], "clinical": np.float32([row])})
    assert fused["scar"] == pytest.approx(float(scar[0, 0]), abs=1e-6)
    assert fused["lvef"] == pytest.approx(float(lvef[0, 0]), abs=1e-6)
    complete = {name: 1 for name in CLINICAL_FEATURES} | {"age": 50}
    assert head(embedding, ClinicalFeatures(**complete))[1] == []


def test_a_model_without_a_fusion_head_has_none(tmp_path):
    card = json.loads((MODEL_DIR / "model_card.json").read_text())
    card["clinical"], card["fusion_onnx"] = None, None
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    assert not FusionHead(tmp_path, ModelCard.load(tmp_path)).available
