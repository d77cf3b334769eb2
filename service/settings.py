"""Gateway configuration, from environment variables: read once per worker (``from_env``) and
handed to everything that needs it (the service, the request guard)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ecgscreen.contract import MODEL_NAME
from ecgscreen.imaging.limits import max_bytes_from_env

__all__ = ["Settings"]

_DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "model_repository" / MODEL_NAME


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


def _positive_int(name: str, default: int) -> int:
    value = _float(name, float(default))
    if value < 1 or value != int(value):
        raise ValueError(f"{name}={os.environ.get(name)!r} must be a whole number of at least 1")
    return int(value)


def _token() -> str | None:
    """``ECGSCREEN_API_TOKEN``, else the first line of ``ECGSCREEN_API_TOKEN_FILE`` (a mounted
    Secret), else no authentication."""
    token = os.environ.get("ECGSCREEN_API_TOKEN", "").strip()
    path = os.environ.get("ECGSCREEN_API_TOKEN_FILE", "").strip()
    if not token and path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"ECGSCREEN_API_TOKEN_FILE={path!r} cannot be read: {exc.strerror}") from None
        if not token:
            raise ValueError(f"ECGSCREEN_API_TOKEN_FILE={path!r} is empty")
    return token or None


@dataclass(frozen=True)
class Settings:
    triton_url: str  # gRPC host:port
    api_token: str | None
    model_dir: Path  # model_card.json and fusion.onnx
    max_body_bytes: int  # the largest ECG file: intake's own limit (ECGSCREEN_MAX_BODY_MB)
    triton_timeout_s: float  # one Triton call
    request_timeout_s: float  # a whole request, retries included
    retry_after_s: int
    # Readiness: a canary through Triton at most every canary_interval_s per worker (cached
    # between), each allowed canary_timeout_s (generous: a busy Triton is not a broken one).
    canary_interval_s: float = 5.0
    canary_timeout_s: float = 5.0
    # Back-pressure: requests one worker works on at once; past it, 503 + Retry-After at once.
    max_in_flight: int = 16

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            triton_url=os.environ.get("ECGSCREEN_TRITON_URL", "127.0.0.1:8001"),
            api_token=_token(),
            model_dir=Path(os.environ.get("ECGSCREEN_MODEL_DIR", str(_DEFAULT_MODEL_DIR))),
            max_body_bytes=max_bytes_from_env(),
            triton_timeout_s=_float("ECGSCREEN_TRITON_TIMEOUT_S", 20.0),
            request_timeout_s=_float("ECGSCREEN_REQUEST_TIMEOUT_S", 30.0),
            retry_after_s=int(_float("ECGSCREEN_RETRY_AFTER_S", 5.0)),
            canary_interval_s=_float("ECGSCREEN_CANARY_INTERVAL_S", 5.0),
            canary_timeout_s=_float("ECGSCREEN_CANARY_TIMEOUT_S", 5.0),
            max_in_flight=_positive_int("ECGSCREEN_MAX_IN_FLIGHT", 16),
        )
