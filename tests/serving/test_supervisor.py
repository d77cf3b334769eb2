"""The supervisor's restart timing, without servers (the chaos tests run it for real)."""

from __future__ import annotations

from ecgscreen.serving.supervisor import Backoff, RestartPolicy


def test_restarts_wait_1_s_doubling_to_30_s():
    backoff = Backoff(RestartPolicy())
    assert [backoff.next(now=0) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_minute_of_health_starts_the_backoff_again_and_less_does_not():
    policy = RestartPolicy()
    backoff = Backoff(policy)
    assert [backoff.next(0), backoff.next(1), backoff.next(2)] == [1, 2, 4]
    backoff.healthy(10)
    backoff.healthy(20)  # health is counted from when it began
    assert backoff.next(10 + policy.stable_after_s - 1) == 8
    backoff.healthy(100)
    assert backoff.next(100 + policy.stable_after_s) == 1
    assert backoff.next(200) == 2


def test_the_canary_interval_comes_from_the_environment(monkeypatch):
    assert RestartPolicy.from_env().canary_every_s == 5.0
    monkeypatch.setenv("ECGSCREEN_CANARY_INTERVAL_S", "2.5")
    assert RestartPolicy.from_env().canary_every_s == 2.5
