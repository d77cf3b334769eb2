"""How one attempt at an ECG can go wrong, as the router acts on it.

``Refused``: the object will never work (not an ECG, a file intake refuses): recorded once,
not retried. ``Transient``: something may pass (the PACS, the gateway or Triton down or
failing): recorded with the attempt count and retried with backoff. The reason of either is
a short machine-readable code (a metrics label); neither ever carries patient data.
"""

from __future__ import annotations

__all__ = ["Refused", "Transient"]


class Refused(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason, self.detail = reason, detail


class Transient(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason, self.detail = reason, detail
