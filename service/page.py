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

_TASK_METRICS = ("auc", "auc_ci95", "sensitivity", "specificity", "ppv", "npv", "n", "prevalence")


def _metrics(block: dict | None) -> dict:
    return {key: block[key] for key in _TASK_METRICS if block and key in block}


def card_summary(card: dict) -> dict:
    """What a reader of a result needs from the model card, in the page's own shape."""
    tasks = card.get("tasks") or ["scar", "lvef"]
    metrics = card.get("metrics") or {}
    clinical = card.get("clinical") or {}
    training = card.get("training_data") or {}
    return {
        "name": card.get("name", "ecg_multitask"),
        "version": str(card.get("version", "")),
        "created": card.get("created"),
        "intended_use": card.get("intended_use", "Research use only. Not for diagnosis."),
        "backbone": (card.get("architecture") or {}).get("backbone"),
        "input_size": card.get("input_size"),
        "training_data": training.get("description"),
        "threshold_source": card.get("threshold_source"),
        "tasks": {
            task: {
                "description": (card.get("task_descriptions") or {}).get(task, task),
                "threshold": (card.get("thresholds") or {}).get(task),
                "average": (card.get("population_average") or {}).get(task),
                "metrics": _metrics(metrics.get(task)),
                "fused_metrics": _metrics((metrics.get("fused") or {}).get(task)),
            }
            for task in tasks
        },
        "evaluation": {"n": metrics.get("n"), "split": metrics.get("split")},
        "clinical_features": list(clinical.get("features") or []),
    }


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
    card: dict, *, token_required: bool, max_upload_bytes: int, endpoints: Iterable[str]
) -> Starlette:
    """The ASGI app to mount at ``PAGE_PATH``: ``about.json`` and the static files."""
    about = {
        "model": card_summary(card),
        "token_required": token_required,
        "max_upload_bytes": max_upload_bytes,  # the page refuses a larger file before sending it
        "endpoints": sorted(endpoints),
    }

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
