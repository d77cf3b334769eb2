"""The router's call to the gateway: one ECG file in, the STOW-RS body of its results out.

The router goes through the gateway's ``POST /report`` rather than to Triton: the SR then
carries exactly what ``/predict`` answers, and heatmap rendering, fusion, limits and errors
live in one place. Outcomes, as the router acts on them:

* the results (body and Content-Type, ready for STOW-RS);
* :class:`Refused`: a 4xx that says the file will never work (recorded, not retried);
* :class:`Transient`: the gateway or Triton down, busy or failing (retried with backoff);
  ``internal`` (with the gateway's request id) when it failed on this very file (a bug).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from .outcomes import Refused, Transient

__all__ = ["GatewayClient", "token_from_env"]

# 4xx answers that are about the moment or the set-up, not the file: retry them.
_RETRYABLE_4XX = {401, 403, 404, 408, 429}


def token_from_env() -> str | None:
    """The gateway's bearer token, as the gateway reads it: ``ECGSCREEN_API_TOKEN`` or the
    first line of ``ECGSCREEN_API_TOKEN_FILE``."""
    token = os.environ.get("ECGSCREEN_API_TOKEN", "").strip()
    path = os.environ.get("ECGSCREEN_API_TOKEN_FILE", "").strip()
    if not token and path:
        token = Path(path).read_text().strip()
    return token or None


class GatewayClient:
    def __init__(self, url: str, token: str | None = None, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def report(self, data: bytes, tasks: str | None = None) -> tuple[bytes, str]:
        """(multipart body, its Content-Type) for one ECG file."""
        form = {"task": tasks} if tasks else {}
        try:
            response = self._http.post("/report", files={"file": ("ecg.dcm", data)}, data=form)
        except httpx.TimeoutException:
            raise Transient("gateway_timeout") from None
        except httpx.HTTPError as exc:
            raise Transient("gateway_unreachable", type(exc).__name__) from None
        if response.status_code == 200:
            return response.content, response.headers.get("content-type", "")
        try:
            error = response.json()
        except ValueError:
            error = {}
        reason = str(error.get("error") or f"http_{response.status_code}")
        if 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX:
            raise Refused(reason, str(error.get("detail", "")))
        if reason == "internal":  # the gateway or intake failed on this ECG: its request id finds it
            request_id = error.get("request_id") or response.headers.get("x-request-id")
            raise Transient("internal", f"request_id={request_id}" if request_id else "")
        raise Transient(f"gateway_{response.status_code}", reason)
