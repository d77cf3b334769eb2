"""Where the time goes: CPU seconds per role of the served stack, read from the processes.

CPU time is what a 2-core machine runs out of; unlike wall time it barely moves when other
work shares the machine, so "cpu-ms per ECG" per role explains a throughput that noise blurs.
Roles: ``intake`` (the ``ecg_preprocess`` python-backend stubs), ``network``
(``ecg_multitask``'s), ``triton`` (tritonserver itself: gRPC, ensemble, scheduling),
``gateway`` (the BentoML processes) and ``client`` (this process: the load generator).
"""

from __future__ import annotations

import resource

import psutil

from ecgscreen.contract import MODEL_NAME, PREPROCESS_NAME

__all__ = ["ROLES", "CpuMeter"]

ROLES = ("intake", "network", "triton", "gateway", "client")


def _role(process: psutil.Process, default: str) -> str:
    command = " ".join(process.cmdline())
    if f"{PREPROCESS_NAME}/1/model.py" in command:
        return "intake"
    if f"{MODEL_NAME}/1/model.py" in command:
        return "network"
    return default


class CpuMeter:
    """CPU seconds spent so far by each role; ``roots`` maps a role to a server's PID (its
    whole process tree counts, python-backend stubs by the model they run)."""

    def __init__(self, **roots: int) -> None:
        self.roots = {role: psutil.Process(pid) for role, pid in roots.items()}

    def read(self) -> dict[str, float]:
        spent = dict.fromkeys(ROLES, 0.0)
        for default, root in self.roots.items():
            for process in [root, *root.children(recursive=True)]:
                try:
                    times = process.cpu_times()
                    role = _role(process, default)
                except psutil.Error:  # gone meanwhile
                    continue
                spent[role] += times.user + times.system
        usage = resource.getrusage(resource.RUSAGE_SELF)
        spent["client"] = usage.ru_utime + usage.ru_stime
        return spent

    @staticmethod
    def per_item(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
        """cpu-ms per item of each role between two readings."""
        return {role: (after[role] - before[role]) * 1000 / n for role in ROLES}
