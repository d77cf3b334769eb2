"""The gateway's own Prometheus metrics (namespace ``ecgscreen``), next to BentoML's.

Created lazily, inside the worker: BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` after the
service module is imported, and prometheus_client picks single- or multi-process mode when
*it* is imported. Importing it at module level would hide every worker's counts but one's.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

__all__ = ["gateway_metrics"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0)
PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@lru_cache(maxsize=1)
def gateway_metrics() -> SimpleNamespace:
    import prometheus_client as prom  # deferred on purpose, see the module docstring

    ns = "ecgscreen"
    return SimpleNamespace(
        requests=prom.Counter("requests", "Requests by endpoint, sniffed input format and outcome",
                              ["endpoint", "input_format", "outcome"], namespace=ns),
        refusals=prom.Counter("preprocess_refusals", "Inputs refused by intake, by reason", ["reason"], namespace=ns),
        triton_latency=prom.Histogram("triton_latency_seconds", "Round trip to Triton's ensemble",
                                      namespace=ns, buckets=LATENCY_BUCKETS),
        request_latency=prom.Histogram("request_latency_seconds", "Whole request, as the gateway sees it",
                                       ["endpoint"], namespace=ns, buckets=LATENCY_BUCKETS),
        probability=prom.Histogram("predicted_probability", "Predicted positive-class probability (drift watch)",
                                   ["task"], namespace=ns, buckets=PROBABILITY_BUCKETS),
        positives=prom.Counter("positive_calls", "Predictions at or above the task's threshold", ["task"], namespace=ns),
        predictions=prom.Counter("predictions", "Predictions made, per task", ["task"], namespace=ns),
        canary=prom.Counter("canary", "Readiness canary rounds through Triton, by outcome (ok, wrong_answer, "
                            "error, unavailable, timeout)", ["outcome"], namespace=ns),
    )  # fmt: skip
