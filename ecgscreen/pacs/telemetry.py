"""The router's Prometheus metrics (namespace ``ecgscreen_pacs``), served by
prometheus_client's own HTTP server.

* ``processed_total{origin}``: ECGs whose results are stored (origin: orthanc, qido, scp);
* ``refused_total{reason}``: objects recorded as refused, never retried (``not_an_ecg`` or
  the gateway's intake reason);
* ``failed_total{reason}``: failed attempts, each retried with backoff;
* ``lag_seconds``: how long the oldest ECG still without results has waited since it reached
  the PACS (0 when none waits); ``waiting``: how many wait;
* ``processing_seconds``: one ECG, fetch + gateway + store;
* ``pacs_errors_total``: polls of the PACS that failed (it was down or erring).

Each router has its own registry, so tests can run several in one process.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["RouterMetrics"]

_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0, 120.0)


@dataclass
class RouterMetrics:
    registry: CollectorRegistry
    processed: Counter
    refused: Counter
    failed: Counter
    lag: Gauge
    waiting: Gauge
    processing: Histogram
    pacs_errors: Counter

    @classmethod
    def create(cls) -> RouterMetrics:
        registry = CollectorRegistry()
        ns, sub = "ecgscreen", "pacs"
        metrics = cls(
            registry=registry,
            processed=Counter("processed", "ECGs whose results are stored", ["origin"],
                              namespace=ns, subsystem=sub, registry=registry),
            refused=Counter("refused", "Objects recorded as refused (never retried), by reason", ["reason"],
                            namespace=ns, subsystem=sub, registry=registry),
            failed=Counter("failed", "Failed attempts (retried with backoff), by reason", ["reason"],
                           namespace=ns, subsystem=sub, registry=registry),
            lag=Gauge("lag_seconds", "Age of the oldest ECG still without results (0: none waits)",
                      namespace=ns, subsystem=sub, registry=registry),
            waiting=Gauge("waiting", "ECGs waiting for results (pending or failed, to retry)",
                          namespace=ns, subsystem=sub, registry=registry),
            processing=Histogram("processing_seconds", "One ECG: fetch, gateway /report, store",
                                 namespace=ns, subsystem=sub, registry=registry, buckets=_BUCKETS),
            pacs_errors=Counter("pacs_errors", "Polls of the PACS that failed", namespace=ns, subsystem=sub,
                                registry=registry),
        )  # fmt: skip
        for origin in ("orthanc", "qido", "scp"):  # a rate of 0 is not "no data"
            metrics.processed.labels(origin)
        return metrics

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        start_http_server(port, addr=host, registry=self.registry)
