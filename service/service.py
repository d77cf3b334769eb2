"""``ecgscreen`` gateway: HTTP in front of Triton's ``ecg_screening`` ensemble (BentoML 1.4).

Endpoints: ``POST /predict`` and ``POST /explain`` (multipart, field ``file``), BentoML's
``/livez``, ``/readyz`` (ready when Triton's ensemble is) and ``/metrics``. The gateway owns
what Triton should not: limits and authentication, the clinical-feature fusion, the heatmap
rendering, metrics, and errors a client can act on. Research use only, not for diagnosis.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path

import anyio
import bentoml
from starlette.responses import JSONResponse, Response

from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.sniff import sniff

from .clinical import FusionHead, parse_clinical
from .explain import lead_attribution, overlay_png, territory_attribution, upsample
from .guard import GatewayGuard, error_response
from .settings import Settings
from .telemetry import gateway_metrics
from .triton_client import IntakeRefusal, TritonGateway, Unavailable, UpstreamError, UpstreamTimeout

log = logging.getLogger("ecgscreen.gateway")

TASKS = ("scar", "lvef")
TASK_NAMES = {"scar": "myocardial scar", "lvef": "LVEF < 50 %"}
_SETTINGS = Settings.from_env()  # fail at start-up, not at the first request, on bad config


def risk_level(probability: float) -> str:
    """The study's app: < 30 % low, 30-70 % medium, >= 70 % high."""
    return "low" if probability < 0.3 else "medium" if probability < 0.7 else "high"


def task_result(probability: float, threshold: float, average: float | None) -> dict:
    return {
        "prediction": int(probability >= threshold),
        "probability": {"negative": round(1.0 - probability, 6), "positive": round(probability, 6)},
        "risk_level": risk_level(probability),
        "threshold": round(threshold, 6),
        "average": None if average is None else round(average, 6),
    }


def _configure_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s")
        )
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


@bentoml.service(
    name="ecgscreen",
    workers=int(os.environ.get("ECGSCREEN_WORKERS", "2")),
    traffic={"timeout": _SETTINGS.request_timeout_s + 5, "max_concurrency": 64},
    http={"port": 3000},
)
class ECGScreening:
    def __init__(self) -> None:
        _configure_logging()
        self.settings = _SETTINGS
        card_path = self.settings.model_dir / "model_card.json"
        self.card = json.loads(card_path.read_text())
        self.fusion = FusionHead(self.settings.model_dir, self.card)
        self.triton = TritonGateway(self.settings.triton_url, self.settings.triton_timeout_s)
        self.metrics = gateway_metrics()
        for task in TASKS:  # series exist from the start: a rate of 0 is not "no data"
            self.metrics.positives.labels(task)
            self.metrics.predictions.labels(task)
        self.model_info = {
            "name": self.card.get("name", "ecg_multitask"),
            "version": str(self.card.get("version", "")),
            "intended_use": self.card.get("intended_use", "Research use only. Not for diagnosis."),
        }

    async def __is_ready__(self) -> bool:
        return await self.triton.ready(timeout_s=1.0)

    @bentoml.on_shutdown
    async def close(self) -> None:
        await self.triton.close()

    # -- the request path shared by both endpoints ------------------------------------------

    async def _run(self, endpoint: str, file: Path, work) -> Response:
        """Read, sniff and hand the file to ``work``; map every failure to a 4xx/5xx JSON."""
        request_id = uuid.uuid4().hex
        start = time.monotonic()
        deadline = start + self.settings.request_timeout_s
        fmt, size, outcome = "unknown", 0, "error"
        try:
            data = await anyio.Path(file).read_bytes()
            size = len(data)
            if size > self.settings.max_body_bytes:
                raise IntakeError(
                    "too_large",
                    f"the file is {size / 2**20:.1f} MiB; the limit is {self.settings.max_body_bytes / 2**20:.0f} MiB",
                )
            fmt = sniff(data)
            response = await work(data, deadline, request_id)
            outcome = "ok"
        except (IntakeError, IntakeRefusal) as error:
            reason = error.reason
            status = error.status
            detail = error.message if isinstance(error, IntakeError) else error.detail
            outcome = "too_large" if status == 413 else "bad_input"
            self.metrics.refusals.labels(reason).inc()
            response = error_response(status, reason, detail, request_id)
        except ValueError as error:  # bad form fields (clinical, task, format)
            outcome = "bad_input"
            response = error_response(422, "invalid_field", str(error), request_id)
        except Unavailable:
            outcome = "upstream_unavailable"
            response = error_response(503, "upstream_unavailable", "the inference server is unavailable; retry shortly",
                                      request_id, retry_after=self.settings.retry_after_s)  # fmt: skip
        except UpstreamTimeout:
            outcome = "timeout"
            response = error_response(504, "timeout", "the inference server did not answer in time; retry shortly",
                                      request_id, retry_after=self.settings.retry_after_s)  # fmt: skip
        except UpstreamError:
            response = error_response(
                502, "upstream_error", "the inference server failed on this request", request_id
            )
        except Exception as error:  # never a stack trace to the client, never file contents in the log
            log.error("request_id=%s endpoint=%s unexpected %s", request_id, endpoint, type(error).__name__)
            response = error_response(
                500, "internal", "unexpected error; the request id identifies it in the logs", request_id
            )
        elapsed = time.monotonic() - start
        self.metrics.requests.labels(endpoint, fmt, outcome).inc()
        self.metrics.request_latency.labels(endpoint).observe(elapsed)
        response.headers["X-Request-ID"] = request_id
        log.info("request_id=%s endpoint=%s format=%s bytes=%d status=%d outcome=%s latency_ms=%.0f",
                 request_id, endpoint, fmt, size, response.status_code, outcome, elapsed * 1000)  # fmt: skip
        return response

    def _observe(self, prediction) -> None:
        self.metrics.triton_latency.observe(prediction.latency_s)
        for task in TASKS:
            probability = getattr(prediction, task)
            self.metrics.predictions.labels(task).inc()
            self.metrics.probability.labels(task).observe(probability)
            if probability >= self._threshold(task):
                self.metrics.positives.labels(task).inc()

    def _threshold(self, task: str) -> float:
        return float((self.card.get("thresholds") or {}).get(task, 0.5))

    # -- endpoints ----------------------------------------------------------------------------

    @bentoml.api(route="/predict")
    async def predict(self, file: Path, clinical: dict | str | None = None) -> dict:
        """Probability of myocardial scar and of LVEF < 50 % for one ECG (PNG, JPEG, TIFF, PDF
        or DICOM). Optional ``clinical``: a JSON object with any of age, female_gender, dm,
        ht, smoke, dlp; missing ones are imputed and reported."""

        async def work(data: bytes, deadline: float, request_id: str) -> Response:
            features = parse_clinical(clinical)
            if features is not None and not self.fusion.available:
                raise ValueError("this model has no clinical fusion head; send the file without 'clinical'")
            prediction = await self.triton.predict(data, deadline, embedding=features is not None)
            self._observe(prediction)
            averages = self.card.get("population_average") or {}
            body = {
                task: task_result(getattr(prediction, task), self._threshold(task), averages.get(task))
                for task in TASKS
            }
            body["fused"] = None
            if features is not None:
                fused, imputed = self.fusion(prediction.embedding, features)
                body["fused"] = {
                    task: task_result(
                        fused[task],
                        float(self.fusion.thresholds.get(task, 0.5)),
                        self.fusion.averages.get(task),
                    )
                    for task in TASKS
                }
                body["fused"]["imputed"] = imputed
            body.update(model=self.model_info, preprocessing=prediction.info, request_id=request_id)
            return JSONResponse(body)

        return await self._run("/predict", file, work)

    @bentoml.api(route="/explain")
    async def explain(self, file: Path, task: str = "scar", format: str = "png") -> dict:  # noqa: A002
        """Grad-CAM++ heatmap for ``task`` (scar | lvef) over the canonical printout: a PNG,
        or (``format=json``) the map and each lead's share of the heat."""

        async def work(data: bytes, deadline: float, request_id: str) -> Response:
            if task not in TASKS:
                raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
            if format not in ("png", "json"):
                raise ValueError(f"format must be png or json, got {format!r}")
            prediction = await self.triton.predict(data, deadline, explain=True)
            self._observe(prediction)
            probability = getattr(prediction, task)
            cam = prediction.cam[TASKS.index(task)]
            heat = upsample(cam, prediction.canonical.shape[0])
            shares = lead_attribution(heat)
            top = sorted(shares, key=shares.get, reverse=True)[:4]
            if format == "json":
                return JSONResponse({
                    "task": task,
                    "probability": round(probability, 6),
                    "risk_level": risk_level(probability),
                    "cam": [[round(float(v), 5) for v in row] for row in cam],
                    "attribution": {lead: round(share, 6) for lead, share in shares.items()},
                    "territories": {k: round(v, 6) for k, v in territory_attribution(shares).items()},
                    "top_leads": top,
                    "canonical_size": int(prediction.canonical.shape[0]),
                    "model": self.model_info,
                    "preprocessing": prediction.info,
                    "request_id": request_id,
                })  # fmt: skip
            title = f"Grad-CAM++  {TASK_NAMES[task]}: {probability:.0%} ({risk_level(probability)} risk)"
            subtitle = (
                "heat on "
                + ", ".join(f"{lead} {shares[lead]:.0%}" for lead in top)
                + "   |   research use only, not for diagnosis"
            )
            png = await anyio.to_thread.run_sync(overlay_png, prediction.canonical, heat, title, subtitle)
            return Response(png, media_type="image/png")

        return await self._run("/explain", file, work)


ECGScreening.add_asgi_middleware(GatewayGuard)
