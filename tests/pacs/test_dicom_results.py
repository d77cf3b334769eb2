"""The AI results as DICOM: what the SR says (read back with highdicom), what dciodvfy thinks
of the SR and the heatmap SC, which study they join, and how their UIDs are derived."""

from __future__ import annotations

import dataclasses
import io
import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest
from orthanc_harness import dciodvfy
from pacs_files import corrupt_waveform, ecg_files, heatmap_picture, task_answer
from pydicom.uid import generate_uid

from ecgscreen.contract import TASK_NAMES
from ecgscreen.pacs import codes
from ecgscreen.pacs.multipart import decode_datasets, encode_datasets, part10
from ecgscreen.pacs.results import CAUTION, MANUFACTURER, Heatmap, NewStudy, build_results
from ecgscreen.pacs.selection import ECG, NOT_ECG, OWN, classify

ANSWER = {"scar": task_answer(0.612345, 0.402), "lvef": task_answer(0.123456, 0.463), "fused": None}
FUSED = {"scar": task_answer(0.71, 0.43), "lvef": task_answer(0.2, 0.36), "imputed": ["dm", "smoke"]}
HEATMAPS = [Heatmap("scar", heatmap_picture(0)), Heatmap("lvef", heatmap_picture(1))]


def _source(name: str = "pydicom-waveform_ecg") -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(ecg_files()[name]))


def _read_sr(ds: pydicom.Dataset) -> dict[tuple[str, str], dict]:
    """{(task, "image"|"fused"): {probability, call, risk}} as highdicom reads the SR."""
    sr = hd.sr.srread(io.BytesIO(part10(ds)))
    out = {}
    for group in sr.content.get_image_measurement_groups():
        task = codes.task_of_finding(group.finding_type)
        kind = group.tracking_identifier.split("(")[1].rstrip(")")
        (measurement,) = group.get_measurements()
        qualitative = {q.name.value: q.value for q in group.get_qualitative_evaluations()}
        assert measurement.unit.value == "1" and measurement.name == codes.PROBABILITY[task]
        out[(task, kind)] = {
            "probability": measurement.value,
            "call": qualitative[codes.CALL.value],
            "risk": qualitative[codes.RISK.value],
        }
    return out


@pytest.mark.parametrize("name", sorted(ecg_files()))
def test_the_sr_says_what_predict_answered_in_the_sources_study(name, model_identity):
    source = _source(name)
    sr, *images = build_results(source, ANSWER, model_identity, HEATMAPS)
    read = _read_sr(sr)
    assert set(read) == {("scar", "image"), ("lvef", "image")}
    for task in ("scar", "lvef"):
        expected = ANSWER[task]
        assert read[(task, "image")]["probability"] == pytest.approx(
            expected["probability"]["positive"], abs=1e-9
        )
        assert read[(task, "image")]["call"] == (codes.PRESENT if expected["prediction"] else codes.ABSENT)
        assert read[(task, "image")]["risk"] == codes.RISK_LEVEL[expected["risk_level"]]
    # same study and patient; the source is the evidence; marked as research output by a device
    for ds in (sr, *images):
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.PatientID == source.PatientID and ds.PatientName == source.PatientName
        assert ds.SeriesDescription.startswith(CAUTION) and ds.Manufacturer == MANUFACTURER
        (air,) = [e for e in ds.ContributingEquipmentSequence if e.Manufacturer == MANUFACTURER]
        assert air.PurposeOfReferenceCodeSequence[0].CodeMeaning == "Processing Algorithm"
        assert air.ManufacturerModelName == model_identity.name
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    referenced = {
        ref.ReferencedSOPInstanceUID
        for s in evidence.ReferencedSeriesSequence
        for ref in s.ReferencedSOPSequence
    }
    assert source.SOPInstanceUID in referenced and {im.SOPInstanceUID for im in images} <= referenced
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.ContentQualification == "RESEARCH" and sr.VerificationFlag == "UNVERIFIED"
    observer = hd.sr.srread(io.BytesIO(part10(sr))).content.get_observer_contexts()[0]
    assert observer.observer_identifying_attributes.uid == model_identity.device_uid


def test_dciodvfy_finds_no_error_in_the_sr_and_the_heatmap(tmp_path, model_identity):
    sr, scar, lvef = build_results(_source(), ANSWER | {"fused": FUSED}, model_identity, HEATMAPS)
    new_sr, new_sc = build_results(
        None, ANSWER, model_identity, HEATMAPS[:1], new_study=NewStudy("ab" * 32, "P1")
    )
    for name, ds in {"sr": sr, "sc": scar, "new-sr": new_sr, "new-sc": new_sc}.items():
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(part10(ds))
        errors, warnings_ = dciodvfy(path)
        assert not errors, (name, errors)
        assert warnings_ is not None  # dciodvfy ran (it always names the IOD)


def test_the_heatmap_is_an_rgb_secondary_capture_with_burned_in_text(model_identity):
    _, scar, lvef = build_results(_source(), ANSWER, model_identity, HEATMAPS)
    for image, heatmap in ((scar, HEATMAPS[0]), (lvef, HEATMAPS[1])):
        assert image.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert image.PhotometricInterpretation == "RGB" and image.BurnedInAnnotation == "YES"
        np.testing.assert_array_equal(image.pixel_array, heatmap.image)
        assert TASK_NAMES[heatmap.task] in image.DerivationDescription
    assert scar.SeriesInstanceUID == lvef.SeriesInstanceUID and scar.InstanceNumber != lvef.InstanceNumber


def test_fused_results_are_reported_next_to_the_image_ones(model_identity):
    sr, *_ = build_results(_source(), ANSWER | {"fused": FUSED}, model_identity, HEATMAPS)
    read = _read_sr(sr)
    assert read[("scar", "fused")]["probability"] == pytest.approx(0.71)
    assert read[("scar", "fused")]["risk"] == codes.RISK_LEVEL["high"]
    assert "imputed=dm,smoke" in str(sr.ContentSequence)


def test_a_non_dicom_input_gets_a_new_study_with_only_the_ids_the_caller_gave(model_identity):
    study = NewStudy(file_digest="cd" * 32, patient_id="MRN-1", accession_number="ACC-9")
    sr, sc = build_results(None, ANSWER, model_identity, HEATMAPS[:1], new_study=study)
    assert sr.StudyInstanceUID == sc.StudyInstanceUID
    for ds in (sr, sc):
        assert ds.PatientID == "MRN-1" and ds.AccessionNumber == "ACC-9"
        assert "PatientBirthDate" in ds and not ds.PatientBirthDate and not str(ds.PatientName)
    other = build_results(None, ANSWER, model_identity, HEATMAPS[:1], new_study=NewStudy("ef" * 32))[0]
    assert other.StudyInstanceUID != sr.StudyInstanceUID


def test_uids_follow_the_ecg_the_model_and_the_answer(model_identity):
    first = [ds.SOPInstanceUID for ds in build_results(_source(), ANSWER, model_identity, HEATMAPS)]
    again = [ds.SOPInstanceUID for ds in build_results(_source(), ANSWER, model_identity, HEATMAPS)]
    assert first == again and len(set(first)) == 3  # the same ECG twice: the same objects
    retrained = dataclasses.replace(model_identity, device_uid=generate_uid(entropy_srcs=["retrained"]))
    assert build_results(_source(), ANSWER, retrained, HEATMAPS)[0].SOPInstanceUID != first[0]
    fused = build_results(_source(), ANSWER | {"fused": FUSED}, model_identity, HEATMAPS)
    assert fused[0].SOPInstanceUID != first[0]
    other_ecg = build_results(_source("generator-pdf"), ANSWER, model_identity, HEATMAPS)
    assert not {ds.SOPInstanceUID for ds in other_ecg} & set(first)


def test_the_device_uid_changes_with_the_weights(model_card):
    from ecgscreen.pacs.results import ModelIdentity

    same = ModelIdentity.from_card(model_card)
    changed_card = model_card.model_copy(
        update={"onnx": model_card.onnx.model_copy(update={"sha256": "0" * 64})}
    )
    assert ModelIdentity.from_card(model_card).device_uid == same.device_uid
    assert ModelIdentity.from_card(changed_card).device_uid != same.device_uid


def test_a_source_without_optional_patient_and_study_attributes_still_gets_results(model_identity):
    source = _source("generator-pdf")
    for keyword in ("PatientBirthDate", "AccessionNumber", "StudyID", "PatientSex", "ReferringPhysicianName"):
        del source[keyword]
    sr, sc = build_results(source, ANSWER, model_identity, HEATMAPS[:1])
    for ds in (sr, sc):
        assert (
            "AccessionNumber" in ds
            and not ds.AccessionNumber
            and ds.StudyInstanceUID == source.StudyInstanceUID
        )


def test_bad_arguments_are_refused_with_a_reason(model_identity):
    with pytest.raises(ValueError, match="either"):
        build_results(_source(), ANSWER, model_identity, HEATMAPS, new_study=NewStudy("ab" * 32))
    with pytest.raises(ValueError, match="tasks"):
        build_results(_source(), ANSWER, model_identity, HEATMAPS, tasks=("ef",))
    with pytest.raises(ValueError, match="RGB"):
        build_results(_source(), ANSWER, model_identity, [Heatmap("scar", np.zeros((10, 10), np.uint8))])


def test_building_never_prints_the_patients_name(model_identity):
    source = _source()
    source.PatientName = "ZZCANARYQX"  # one component: highdicom would warn, quoting it
    source.ReferringPhysicianName = "ZZCANARYDR"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = build_results(source, ANSWER, model_identity, HEATMAPS)
    assert not [w for w in caught if "ZZCANARY" in str(w.message)]
    for ds in results:  # and the names stay exactly as the source has them
        assert ds.PatientName == "ZZCANARYQX" and ds.ReferringPhysicianName == "ZZCANARYDR"


def test_the_router_takes_on_ecgs_and_nothing_else(model_identity):
    for name, data in ecg_files().items():
        ds = pydicom.dcmread(io.BytesIO(data))
        assert classify(ds.SOPClassUID, ds.Modality, ds.get("Manufacturer", "")).kind == ECG, name
    own = build_results(_source(), ANSWER, model_identity, HEATMAPS)
    assert {
        classify(ds.SOPClassUID, ds.Modality, ds.Manufacturer, ds.SeriesDescription).kind for ds in own
    } == {OWN}
    ct = classify("1.2.840.10008.5.1.4.1.1.2", "CT")
    assert ct.kind == NOT_ECG and "CT Image Storage" in ct.detail
    assert classify("1.2.840.10008.5.1.4.1.1.7", "OT").kind == NOT_ECG  # a scan, but not filed as an ECG
    corrupt = pydicom.dcmread(io.BytesIO(corrupt_waveform()))
    assert classify(corrupt.SOPClassUID, corrupt.Modality).kind == ECG  # intake refuses it, not the router


def test_the_multipart_body_carries_the_objects_unchanged(model_identity):
    objects = build_results(_source(), ANSWER, model_identity, HEATMAPS)
    body, content_type = encode_datasets(objects)
    assert content_type.startswith('multipart/related; type="application/dicom"; boundary=')
    back = decode_datasets(body, content_type)
    assert [ds.SOPInstanceUID for ds in back] == [ds.SOPInstanceUID for ds in objects]
    assert [part10(ds) for ds in back] == [part10(ds) for ds in objects]
    with pytest.raises(ValueError, match="multipart/related"):
        decode_datasets(body, "application/json")
    with pytest.raises(ValueError, match="boundary"):
        decode_datasets(body, 'multipart/related; type="application/dicom"')


def test_the_sr_says_how_the_ecg_was_read(model_identity):
    """The reading judge's quality, the leads left blank and an unusual input travel with
    the answer into the SR (the algorithm's parameters), not only into the JSON."""
    answer = {
        **ANSWER,
        "preprocessing": {"quality": 0.91, "leads": {"I": {"status": "read"}, "V2": {"status": "doubtful"}}},
        "novelty": {"distance": 41.2, "threshold": 30.0, "unusual": True},
    }
    sr, *_ = build_results(_source(), answer, model_identity, HEATMAPS)
    texts = _text_values(sr)
    assert {"reading_quality=0.91", "leads_left_blank=V2", "unlike_training_data=distance 41.2"} <= texts
    plain, *_ = build_results(_source(), ANSWER, model_identity, HEATMAPS)
    assert not any(text.startswith("leads_left_blank") for text in _text_values(plain))


def _text_values(ds: pydicom.Dataset) -> set[str]:
    """Every TEXT content item's value in an SR, however deep."""
    found = set()
    for item in ds.get("ContentSequence", []):
        if "TextValue" in item:
            found.add(str(item.TextValue))
        found |= _text_values(item)
    return found
