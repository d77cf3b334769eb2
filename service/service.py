"""``ecgscreen`` gateway: HTTP in front of Triton's ensemble (BentoML 1.4).

Endpoints: ``POST /predict``, ``POST /explain`` and ``POST /report`` (multipart, field
``file``), BentoML's ``/livez``, ``/readyz`` (ready when a recent canary came back right
through Triton: ``readiness``), ``/metrics``,
and the screening page at ``/ui/``. The gateway owns what Triton should not: limits and
authentication, the clinical-feature fusion, the heatmap rendering, the DICOM results
(``report``), metrics, and errors a client can act on. Research use only, not for diagnosis.

The APIs are annotated with their response bodies (``schemas``), so ``/docs.json`` documents
them. They return starlette responses built from those models: BentoML passes a ``Response``
through untouched, which is how an error keeps its status code and a PNG its media type.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import anyio
import bentoml
import numpy as np
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from ecgscreen.card import ModelCard
from ecgscreen.contract import CANARY_OUTCOMES, TASKS
from ecgscreen.explain import (
    explain_picture,
    lead_attribution,
    overlay_png,
    overlay_titles,
    territory_attribution,
    top_leads,
    upsample,
)
from ecgscreen.export.novelty import EmbeddingDistribution
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.imaging.reading_picture import reading_png
from ecgscreen.imaging.sniff import sniff
from ecgscreen.pacs.results import Heatmap, ModelIdentity
from ecgscreen.serving.precision import served_precision

from .clinical import ClinicalFeatures, FusionHead, parse_clinical
from .guard import GatewayGuard, error_response
from .page import PAGE_PATH, screening_page
from .readiness import Readiness
from .report import check_identifiers, parse_tasks, report_body
from .results import failure, fused_result, model_info, risk_level, task_results
from .schemas import ExplainResponse, NoveltyInfo, PredictResponse, PreprocessingInfo
from .settings import Settings
from .telemetry import gateway_metrics
from .triton_client import Prediction, TritonGateway

log = logging.getLogger("ecgscreen.gateway")

_SETTINGS = Settings.from_env()  # fail at start-up, not at the first request, on bad config
_WORKERS = int(os.environ.get("ECGSCREEN_WORKERS", "2"))


def _configure_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s")
        )
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _reading_picture(data: bytes, segmenter) -> tuple[bytes, IntakeError | None]:
    """The reading picture of one file and the judge's refusal of it, if any (CPU work: run
    it in a thread). A file that cannot be read at all raises its ``IntakeError``. Raster
    pages go through ``segmenter`` (Triton's ``ecg_segment``), as in Triton's intake."""
    reading = read_page(data, segmenter=segmenter)
    return reading_png(reading), reading.verdict.refusal


def _json(body: BaseModel) -> JSONResponse:
    # exclude_unset: the intake's info record keeps the keys it had (no nulls for the others)
    return JSONResponse(body.model_dump(mode="json", exclude_unset=True))


@bentoml.service(
    name="ecgscreen",
    workers=_WORKERS,
    # The guard's own in-flight limit (503 + Retry-After in our error shape) comes first;
    # BentoML's (a 429 of its own, per worker: this / workers) only backs it up.
    traffic={
        "timeout": _SETTINGS.request_timeout_s + 5,
        "max_concurrency": 4 * _SETTINGS.max_in_flight * _WORKERS,
    },
    http={"port": 3000},
)
class ECGScreening:
    def __init__(self) -> None:
        _configure_logging()
        self.settings = _SETTINGS
        self.card = ModelCard.load(self.settings.model_dir)
        self.model_info = model_info(self.card)
        self.model_identity = ModelIdentity.from_card(self.card)  # who signs the DICOM results
        self.fusion = FusionHead(self.settings.model_dir, self.card)
        # Inputs unlike anything trained on: the training embeddings' distribution (optional).
        novelty = self.card.novelty
        self.novelty = EmbeddingDistribution.load(self.settings.model_dir / novelty.file) if novelty else None
        self.tasks = tuple(t for t in TASKS if t in self.card.tasks)  # a single-task model: one
        # An imported clinical model of the study has no image-only answer: it answers only
        # through its fusion head (missing features imputed), and its image-only fields are null.
        self.image_only_answer = self.card.image_only_answer
        self.triton = TritonGateway(
            self.settings.triton_url,
            self.settings.triton_timeout_s,
            on_unavailable=lambda reason: self.readiness.upstream_failed(reason),
        )
        self.metrics = gateway_metrics()
        for task in TASKS:  # series exist from the start: a rate of 0 is not "no data"
            self.metrics.positives.labels(task)
            self.metrics.predictions.labels(task)
        for outcome in CANARY_OUTCOMES:
            self.metrics.canary.labels(outcome)
        canary = self.card.canary
        self.readiness = Readiness(
            self.triton,
            canary,
            canary.read(self.settings.model_dir) if canary else None,  # a missing file fails start-up
            self.settings.canary_interval_s,
            self.settings.canary_timeout_s,
            count=lambda outcome: self.metrics.canary.labels(outcome).inc(),
            # the variant Triton runs: INT8 on the CPU config when the card's passed (its own
            # expected answer), unless ECGSCREEN_CPU_PRECISION=fp32; FP32/FP16 on the GPU's
            precision_of=lambda backend: served_precision(self.card, backend),
        )

    @bentoml.on_startup
    async def ask_the_canary(self) -> None:
        """Every worker asks its canary at start-up (in the background): a load balancer
        spreads probes over the workers, and a worker first asked then would answer 503."""
        self.readiness.start()

    async def __is_ready__(self) -> bool:
        return await self.readiness.ready()

    @bentoml.on_shutdown
    async def close(self) -> None:
        await self.triton.close()

    # -- the request path shared by both endpoints ------------------------------------------

    async def _run(self, endpoint: str, file: Path, work) -> Response:
        """Read, sniff and hand the file to ``work``; map every failure to a 4xx/5xx JSON."""
        request_id = uuid.uuid4().hex
        start = time.monotonic()
        deadline = start + self.settings.request_timeout_s
        fmt, size = "unknown", 0
        try:
            data = await anyio.Path(file).read_bytes()
            size = len(data)
            if size > self.settings.max_body_bytes:
                limit = self.settings.max_body_bytes
                raise IntakeError(
                    "too_large", f"the file is {size / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB"
                )
            fmt = sniff(data)
            response = await work(data, deadline, request_id)
            outcome = "ok"
        except Exception as error:  # noqa: BLE001 - every failure becomes an answer, never a trace
            answer = failure(error)
            if isinstance(error, IntakeError):
                self.metrics.refusals.labels(error.reason).inc()
            elif answer.status == 500:  # never file contents in the log: the type names the bug
                log.error(
                    "request_id=%s endpoint=%s unexpected %s", request_id, endpoint, type(error).__name__
                )
            outcome = answer.outcome
            if answer.status in (502, 503, 504):  # Triton failed us: the next probe checks again
                self.readiness.stale()
            retry_after = self.settings.retry_after_s if answer.retry else None
            response = error_response(answer.status, answer.error, answer.detail, request_id, retry_after)
        elapsed = time.monotonic() - start
        self.metrics.requests.labels(endpoint, fmt, outcome).inc()
        self.metrics.request_latency.labels(endpoint).observe(elapsed)
        response.headers["X-Request-ID"] = request_id
        log.info("request_id=%s endpoint=%s format=%s bytes=%d status=%d outcome=%s latency_ms=%.0f",
                 request_id, endpoint, fmt, size, response.status_code, outcome, elapsed * 1000)  # fmt: skip
        return response

    def _observe(self, prediction: Prediction) -> None:
        self.metrics.triton_latency.observe(prediction.latency_s)
        for task, probability in prediction.probability.items():
            self.metrics.predictions.labels(task).inc()
            self.metrics.probability.labels(task).observe(probability)
            if probability >= self.card.threshold(task):
                self.metrics.positives.labels(task).inc()

    def _novelty(self, prediction: Prediction) -> NoveltyInfo | None:
        """The embedding's Mahalanobis distance from the training ECGs'; above the card's
        threshold, a warning travels with the answer too."""
        if self.novelty is None or prediction.embedding is None:
            return None
        distance = float(self.novelty.distance(prediction.embedding)[0])
        threshold = self.card.novelty.threshold
        if distance > threshold:
            prediction.info.setdefault("warnings", []).append(
                f"this ECG is unlike those the model was trained on (embedding distance {distance:.1f} > "
                f"{threshold:.1f}): read the answer with caution"
            )
        return NoveltyInfo(distance=round(distance, 3), threshold=threshold, unusual=distance > threshold)

    async def _answer(
        self, data: bytes, deadline: float, request_id: str, clinical, explain: bool = False
    ) -> tuple[PredictResponse, Prediction]:
        """``/predict``'s answer (``/report`` reports exactly it), and Triton's outputs."""
        features = parse_clinical(clinical)
        if features is not None and not self.fusion.available:
            raise ValueError("this model has no clinical fusion head; send the file without 'clinical'")
        fuse = features is not None or not self.image_only_answer
        prediction = await self.triton.predict(
            data, deadline, embedding=fuse or self.novelty is not None, explain=explain, tasks=self.tasks
        )
        self._observe(prediction)
        fused = None
        if fuse:
            probabilities, imputed = self.fusion(prediction.embedding, features or ClinicalFeatures())
            fused = fused_result(probabilities, imputed, self.card)
        answers = prediction.probability if self.image_only_answer else {}
        novelty = self._novelty(prediction)
        body = PredictResponse(
            **task_results(answers, self.card),
            fused=fused,
            model=self.model_info,
            preprocessing=PreprocessingInfo.model_validate(prediction.info),
            novelty=novelty,
            request_id=request_id,
        )
        return body, prediction

    # -- endpoints ----------------------------------------------------------------------------

    @bentoml.api(route="/predict")
    async def predict(self, file: Path, clinical: dict | str | None = None) -> PredictResponse:
        """Probability of myocardial scar and of LVEF < 50 % for one ECG (PNG, JPEG, TIFF, PDF
        or DICOM). Optional ``clinical``: a JSON object with any of age, female_gender, dm,
        ht, smoke, dlp; missing ones are imputed and reported. A task the model does not
        answer is null (a single-task model; a clinical model of the study answers only in
        ``fused``). Errors: ``ErrorResponse``."""

        async def work(data: bytes, deadline: float, request_id: str) -> Response:
            body, _ = await self._answer(data, deadline, request_id, clinical)
            return _json(body)

        return await self._run("/predict", file, work)

    @bentoml.api(route="/explain")
    async def explain(self, file: Path, task: str = "scar", format: str = "png") -> ExplainResponse:  # noqa: A002
        """Grad-CAM++ heatmap for ``task`` (scar | lvef) over the canonical printout: a PNG
        (``image/png``, the default), or with ``format=json`` the map and each lead's share of
        the heat (``ExplainResponse``). With ``format=reading``: the reading picture (PNG), the
        digitised traces drawn over the levelled page, each lead coloured by the judge's status
        (blue read, orange doubtful, red missing); also for a page the judge refuses, whose
        reason is then in the ``X-Ecgscreen-Refusal`` header. Errors: ``ErrorResponse``."""

        async def work(data: bytes, deadline: float, request_id: str) -> Response:
            if format == "reading":

                def segmenter(page):  # called in the worker thread: back to the event loop
                    return anyio.from_thread.run(self.triton.segment, page, deadline)

                png, refusal = await anyio.to_thread.run_sync(_reading_picture, data, segmenter)
                response = Response(png, media_type="image/png")
                if refusal is not None:
                    response.headers["X-Ecgscreen-Refusal"] = refusal.reason
                return response
            if task not in TASKS:
                raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
            if task not in self.tasks:
                raise ValueError(f"this model answers {', '.join(self.tasks)} only; it has no {task!r} head")
            if format not in ("png", "json"):
                raise ValueError(f"format must be png, json or reading, got {format!r}")
            prediction = await self.triton.predict(data, deadline, explain=True, tasks=self.tasks)
            self._observe(prediction)
            probability = prediction.probability[task]
            cam = prediction.cam[self.tasks.index(task)]
            heat = upsample(cam, prediction.canonical.shape[0])
            shares = lead_attribution(heat)
            top = top_leads(shares)
            if format == "json":
                return _json(ExplainResponse(
                    task=task,
                    probability=round(probability, 6),
                    risk_level=risk_level(probability),
                    cam=[[round(float(v), 5) for v in row] for row in cam],
                    attribution={lead: round(share, 6) for lead, share in shares.items()},
                    territories={k: round(v, 6) for k, v in territory_attribution(shares).items()},
                    top_leads=top,
                    canonical_size=int(prediction.canonical.shape[0]),
                    model=self.model_info,
                    preprocessing=PreprocessingInfo.model_validate(prediction.info),
                    request_id=request_id,
                ))  # fmt: skip
            title, subtitle = overlay_titles(task, probability, shares)
            png = await anyio.to_thread.run_sync(overlay_png, prediction.canonical, heat, title, subtitle)
            return Response(png, media_type="image/png")

        return await self._run("/explain", file, work)

    @bentoml.api(route="/report")
    async def report(
        self,
        file: Path,
        clinical: dict | str | None = None,
        task: str | None = None,
        patient_id: str | None = None,
        accession: str | None = None,
    ) -> bytes:
        """The ``/predict`` answer and the ``/explain`` pictures as DICOM: a TID 1500 SR and
        one heatmap Secondary Capture per task (``task``: comma-separated, default all), in
        ``multipart/related; type="application/dicom"`` (a STOW-RS body: post it to a PACS
        unchanged). A DICOM file lends its study and patient; for any other file, a new study
        with only ``patient_id`` / ``accession``. Errors: ``ErrorResponse``."""

        async def work(data: bytes, deadline: float, request_id: str) -> Response:
            tasks = parse_tasks(task, self.tasks)
            fmt = sniff(data)
            check_identifiers(fmt, patient_id, accession)
            body, prediction = await self._answer(data, deadline, request_id, clinical, explain=True)

            def build() -> tuple[bytes, str]:
                heatmaps = [
                    Heatmap(t, np.asarray(explain_picture(prediction.canonical, prediction.cam, t,
                                                          prediction.probability[t], self.tasks)))
                    for t in tasks
                ]  # fmt: skip
                answer = body.model_dump(mode="json")
                return report_body(
                    data, fmt, answer, heatmaps, self.model_identity, tasks, patient_id, accession
                )

            content, content_type = await anyio.to_thread.run_sync(build)
            return Response(content, media_type=content_type)

        return await self._run("/report", file, work)


ECGScreening.add_asgi_middleware(GatewayGuard, settings=_SETTINGS)
ECGScreening.mount_asgi_app(
    screening_page(
        ModelCard.load(_SETTINGS.model_dir),
        token_required=_SETTINGS.api_token is not None,
        max_upload_bytes=_SETTINGS.max_body_bytes,
        endpoints=[api.route for api in ECGScreening.apis.values()],
    ),
    path=PAGE_PATH,
)
