"""The coded concepts of the ecgscreen AI results SR (TID 1500), in one place.

Standard codes where DICOM has them (the TID 1500 structure, UCUM's unit ``1``, SNOMED CT
present / absent, LOINC's "EKG study", IHE AIR's "Processing Algorithm" equipment). The
model's own concepts (what it estimates, the risk bands) have no standard code, so they are
written in a private coding scheme, ``99ECGSCREEN``, declared in the SR's Coding Scheme
Identification Sequence as DICOM requires for a private scheme. Code values are SH: at most
16 characters.
"""

from __future__ import annotations

from highdicom.sr import CodedConcept

from ..contract import TASK_NAMES, TASKS

__all__ = [
    "SCHEME",
    "SCHEME_NAME",
    "PROCEDURE_REPORTED",
    "UNIT_ONE",
    "PRESENT",
    "ABSENT",
    "PROCESSING_ALGORITHM",
    "FINDING",
    "PROBABILITY",
    "CALL",
    "RISK",
    "RISK_LEVEL",
    "task_of_finding",
]

SCHEME = "99ECGSCREEN"
SCHEME_NAME = "ecgscreen AI results (private)"

PROCEDURE_REPORTED = CodedConcept("11524-6", "LN", "EKG study")
UNIT_ONE = CodedConcept("1", "UCUM", "no units")
PRESENT = CodedConcept("52101004", "SCT", "Present")
ABSENT = CodedConcept("2667000", "SCT", "Absent")
# IHE AI Results (AIR), Contributing Equipment of an AI result: a code the profile defines
# until DICOM assigns one; highdicom's ContributingEquipment refuses it, so it is added as is.
PROCESSING_ALGORITHM = CodedConcept("Newcode1", "99IHE", "Processing Algorithm")

# Per task: the finding, its probability, the call at the model's threshold.
_CODE_VALUE = {"scar": "scar", "lvef": "lvef-lt-50"}
FINDING = {task: CodedConcept(_CODE_VALUE[task], SCHEME, TASK_NAMES[task]) for task in TASKS}
PROBABILITY = {
    "scar": CodedConcept("scar-prob", SCHEME, "Probability of myocardial scar"),
    "lvef": CodedConcept("lvef-lt-50-prob", SCHEME, "Probability of LVEF < 50 %"),
}
CALL = CodedConcept("threshold-call", SCHEME, "Model call at its threshold")
RISK = CodedConcept("risk-level", SCHEME, "Risk level")
RISK_LEVEL = {
    "low": CodedConcept("risk-low", SCHEME, "Low risk (< 30 %)"),
    "medium": CodedConcept("risk-medium", SCHEME, "Medium risk (30-70 %)"),
    "high": CodedConcept("risk-high", SCHEME, "High risk (>= 70 %)"),
}


def task_of_finding(code: CodedConcept) -> str | None:
    """The task ("scar" / "lvef") a finding code stands for, or None."""
    return next((task for task, finding in FINDING.items() if finding == code), None)
