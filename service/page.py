"""The screening page at ``/ui/``: plain HTML, CSS and JavaScript from ``service/ui/``.

No build step: the browser loads the files as they are (ES modules). Next to them, one
generated document, ``/ui/about.json``, tells the page what this gateway offers before it
sends anything: the model card summary the report prints, whether a bearer token is
required, and which endpoints exist (``/report`` comes with the PACS integration; the page
offers the DICOM download only where it is there).

Everything under ``/ui/`` is public (the guard lets GET and HEAD through without a token): it
is the same for every visitor and holds no patient data. The page's own calls to
``/predict``, ``/explain`` and ``/report`` carry the token.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ecgscreen.card import ModelCard
from ecgscreen.serving.precision import cpu_network

from .schemas import ModelSummary, PageInfo, PageTask

__all__ = ["UI_DIR", "PAGE_PATH", "card_summary", "screening_page"]

UI_DIR = Path(__file__).resolve().parent / "ui"
PAGE_PATH = "/ui"  # link to "/ui/": "/ui" answers with a redirect

# The page loads only its own files; images are blob: URLs made from /explain's PNG.
_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
     b"frame-ancestors 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Revalidate every load (a cheap 304 via ETag), so an upgraded gateway serves its own page.
    (b"cache-control", b"no-cache"),
]  # fmt: skip


def card_summary(card: ModelCard) -> ModelSummary:
    """What a reader of a result needs from the model card: the report prints it."""
    tasks = {}
    for task in card.tasks:
        metrics = getattr(card.metrics, task, None) if card.metrics else None
        tasks[task] = PageTask(
            description=card.task_descriptions.get(task, task),
            threshold=card.threshold(task),
            average=card.average(task),
            auc=metrics.auc if metrics else None,
            auc_ci95=metrics.auc_ci95 if metrics else None,
            sensitivity=metrics.sensitivity if metrics else None,
            specificity=metrics.specificity if metrics else None,
        )
    return ModelSummary(
        name=card.name,
        version=card.version,
        created=card.created,
        intended_use=card.intended_use,
        backbone=card.architecture.backbone,
        input_size=card.input_size,
        training_data=(card.training_data or {}).get("description"),
        evaluated_on=card.metrics.n if card.metrics else None,
        tasks=tasks,
        clinical_features=list(card.clinical.features) if card.clinical else [],
        cpu_precision=_cpu_precision(card),
    )


def _cpu_precision(card: ModelCard) -> str | None:
    """What ``serving.precision`` makes the CPU config run (``None``: a setting it refuses)."""
    try:
        return cpu_network(card).precision
    except ValueError:
        return None


class _Headers:
    """Adds the page's security and caching headers to every response under ``/ui``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def screening_page(
    card: ModelCard, *, token_required: bool, max_upload_bytes: int, endpoints: Iterable[str]
) -> Starlette:
    """The ASGI app to mount at ``PAGE_PATH``: ``about.json`` and the static files."""
    about = PageInfo(
        model=card_summary(card),
        token_required=token_required,
        max_upload_bytes=max_upload_bytes,
        endpoints=sorted(endpoints),
    ).model_dump(mode="json")

    async def about_json(request) -> JSONResponse:
        return JSONResponse(about)

    app = Starlette(
        routes=[
            Route("/about.json", about_json, methods=["GET", "HEAD"]),
            Mount("/", StaticFiles(directory=UI_DIR, html=True)),
        ]
    )
    app.add_middleware(_Headers)
    return app
