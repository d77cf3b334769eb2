"""The router's SQLite state: what survives a restart, what is due, what is never retried."""

from __future__ import annotations

import threading
import time

import pytest

from ecgscreen.pacs.state import State


def _add(state: State, uid: str, **kwargs) -> bool:
    return state.add(uid, "1.2.3", "1.2.3.4", "1.2.840.10008.5.1.4.1.1.9.1.1", "orthanc", **kwargs)


def test_a_restart_keeps_cursor_and_every_status(tmp_path):
    state = State(tmp_path / "state.sqlite")
    state.set_cursor("orthanc", "41")
    for uid in ("1.1", "1.2", "1.3", "1.4"):
        assert _add(state, uid)
    state.done("1.1", 2)
    state.refused("1.2", "waveform_invalid")
    state.failed("1.3", "gateway 503 upstream_unavailable", backoff_s=60)
    state.close()

    again = State(tmp_path / "state.sqlite")
    assert again.cursor("orthanc") == "41" and again.cursor("qido", "none") == "none"
    assert again.counts() == {"pending": 1, "failed": 1, "done": 1, "refused": 1}
    assert [i.sop_instance_uid for i in again.due()] == ["1.4"]  # the failed one waits its backoff
    assert again.get("1.2").reason == "waveform_invalid" and again.get("1.2").attempts == 1
    assert again.get("1.1").results == 2 and again.get("1.1").next_attempt is None


def test_an_object_is_taken_on_once(tmp_path):
    state = State(tmp_path / "state.sqlite")
    assert _add(state, "2.1")
    state.done("2.1", 2)
    assert not _add(state, "2.1")  # seen again (a QIDO poll, a re-sent C-STORE): ignored
    assert state.get("2.1").status == "done"
    assert state.known(["2.1", "2.2"]) == {"2.1"}


def test_a_refusal_is_recorded_without_an_attempt(tmp_path):
    state = State(tmp_path / "state.sqlite")
    assert _add(state, "3.1", refused_reason="not_an_ecg: CT Image Storage is not an ECG object")
    record = state.get("3.1")
    assert record.status == "refused" and record.attempts == 0 and record.reason.startswith("not_an_ecg")
    assert state.due() == [] and state.waiting() == 0


def test_failures_count_attempts_and_come_back_after_their_backoff(tmp_path):
    state = State(tmp_path / "state.sqlite")
    _add(state, "4.1", arrived=time.time() - 30)
    assert state.failed("4.1", "stow_unreachable", backoff_s=5) == 1
    assert state.due() == []
    assert [i.sop_instance_uid for i in state.due(now=time.time() + 6)] == ["4.1"]
    assert state.failed("4.1", "stow_unreachable", backoff_s=5) == 2
    assert state.oldest_waiting() == pytest.approx(time.time() - 30, abs=2)
    state.done("4.1", 3)
    assert state.get("4.1").attempts == 3 and state.oldest_waiting() is None


def test_concurrent_writers_lose_nothing(tmp_path):
    state = State(tmp_path / "state.sqlite")

    def writer(prefix: str) -> None:
        for i in range(100):
            _add(state, f"{prefix}.{i}")
            state.done(f"{prefix}.{i}", 1)

    threads = [threading.Thread(target=writer, args=(f"5.{t}",)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state.counts()["done"] == 400


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    state = State(tmp_path / "state.sqlite")
    with pytest.raises(RuntimeError), state.transaction():
        _add(state, "6.1")
        state.set_cursor("orthanc", "7")
        raise RuntimeError("the PACS went away mid-poll")
    assert state.get("6.1") is None and state.cursor("orthanc", "0") == "0"
