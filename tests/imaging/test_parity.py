"""``python -m bench parity`` in small: one ECG, one answer, whatever file it came in.

Eight ECGs of a seed that neither training nor the benchmark uses, each written in every
format the generator makes, through the serving intake and the committed model (ONNX):
|P(file) - P(waveform)| per format and task.

A vector PDF is read from the numbers the cart drew, so it is held to the benchmark's goal
for every ECG. A raster is held to what the benchmark measures for the committed model: the
typical ECG answers as its waveform (median |dP| about 0.01 over 200 ECGs), but a few in
twenty still move by 0.1-0.2 (p95; the goal of 0.05 is not met yet, see the README), so here
the median of each raster format must stay within the goal. No vector PDF or clean export
may be refused; of a scan's eight the reading judge may refuse one, of a photo's two, whose
leads it finds read wrong (rows misregistered in time, leads at -10 to -1 dB against the
recording: a wrong answer is worse than a refusal; `bench refusals` measures the rate).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.parity import P95_GOAL, measure
from ecgscreen.serving.triton import DEFAULT_REPOSITORY
from ecgscreen.synth.renditions import ACQUISITION_OF

pytestmark = pytest.mark.slow
N = 12


def test_every_format_answers_as_its_waveform():
    # 12 ECGs: with 8, one photo read (rather than refused) moves a median across the goal.
    result = measure(N, seed=43, repository=DEFAULT_REPOSITORY, workers=2, world_pages=False)
    assert set(result["table"]) == set(ACQUISITION_OF) and set(result["tasks"]) == {"scar", "lvef"}
    for name, row in result["table"].items():
        if ACQUISITION_OF[name] in ("vector PDF", "clean raster"):
            assert not row["refused"], (name, row["refused"])
        else:
            allowed = 2 if ACQUISITION_OF[name] == "photo" else 1
            assert len(row["refused"]) <= allowed and set(row["refused"]) <= {"unreadable"}, (
                name,
                row["refused"],
            )
        for task in result["tasks"]:
            deltas = row[task]
            assert deltas.size == N - len(row["refused"])
            shown = (name, task, np.round(deltas, 3).tolist())
            if ACQUISITION_OF[name] == "vector PDF":
                assert float(deltas.max()) <= P95_GOAL, shown
            else:
                assert float(np.median(deltas)) <= P95_GOAL, shown
