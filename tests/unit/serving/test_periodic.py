"""The background task runner of a replica's syncs and pushes."""

from __future__ import annotations

import threading

import pytest

from serving.periodic import Periodic


def test_a_periodic_task_runs_until_stopped_and_survives_a_failing_call() -> None:
    calls: list[int] = []
    twice = threading.Event()

    def task() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store down")
        if len(calls) >= 3:
            twice.set()

    periodic = Periodic("test-periodic", "test task", task)
    periodic.start(0.01)
    assert twice.wait(5), "the task stopped after its first failure"
    periodic.stop()
    assert not periodic.running
    settled = len(calls)
    threading.Event().wait(0.05)
    assert len(calls) == settled


def test_a_periodic_task_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        Periodic("test-periodic", "test task", lambda: None).start(0)
