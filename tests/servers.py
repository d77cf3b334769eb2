"""Helpers for tests that start real servers: free ports, waiting, process hygiene."""

from __future__ import annotations

import os
import time

from ecgscreen.serving.procs import free_ports

__all__ = ["free_ports", "wait_until", "children_of", "segmented_pages"]


def segmented_pages(grpc_url: str) -> int:
    """How many pages Triton's ``ecg_segment`` has answered (its inference statistics; a
    count of zero is left out of the JSON)."""
    import tritonclient.grpc as grpcclient

    from ecgscreen.contract import SEGMENTER_NAME

    stats = grpcclient.InferenceServerClient(grpc_url).get_inference_statistics(SEGMENTER_NAME, as_json=True)
    return sum(int(model.get("inference_count", 0)) for model in stats["model_stats"])


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


def children_of(pgid: int) -> list[int]:
    """PIDs of live processes in process group ``pgid`` (zombies excluded)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            pids.append(int(entry))
    return pids
