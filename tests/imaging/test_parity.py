"""``python -m bench parity`` in small: one ECG, one answer, whatever file it came in.

Eight ECGs of a seed that neither training nor the benchmark uses, each written in every
format the generator makes, through the serving intake and the committed model (ONNX):
|P(file) - P(waveform)| per format and task, held to the benchmark's goals.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.parity import MAX_GOAL, P95_GOAL, measure
from ecgscreen.serving.triton import DEFAULT_REPOSITORY

pytestmark = pytest.mark.slow


def test_every_format_answers_as_its_waveform():
    result = measure(8, seed=43, repository=DEFAULT_REPOSITORY, workers=2)
    assert set(result["table"]) and set(result["tasks"]) == {"scar", "lvef"}
    for name, row in result["table"].items():
        assert not row["refused"], (name, row["refused"])
        for task in result["tasks"]:
            deltas = row[task]
            assert deltas.size == 8
            assert float(np.percentile(deltas, 95)) <= P95_GOAL and float(deltas.max()) <= MAX_GOAL, (
                name,
                task,
                np.round(deltas, 3).tolist(),
            )
