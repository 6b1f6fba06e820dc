"""The traffic client's retries against a real local HTTP server that fails on purpose.

The server is a few lines of asyncio speaking HTTP/1.1 (one request per connection), so that it can
drop a connection mid-request the way a restarting service does; it records engagements once per
(request_id, tweet_id, action) like the event log. It exists only for the retry semantics: the
integration test runs the client against the real service.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pipelines.traffic.client import (
    ClientStats,
    RetryPolicy,
    ServiceClient,
    ServiceUnavailableError,
)

REQUEST_ID = "0123456789abcdef0123456789abcdef"
Plan = Callable[[int], str]  # attempt number (1-based) of a key -> what the server does


@dataclass
class FlakyService:
    """POST /engagement that follows ``plan`` per engagement key: "drop" closes the connection
    without answering, "503" answers Service Unavailable, "record-drop" records then drops (the
    answer is lost), "record" records and answers, "reject" answers 422."""

    plan: Plan
    attempts: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    recorded: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    busy: int = 0  # connections open and not yet answered
    most_busy: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        await asyncio.sleep(0.002)
        self.busy -= 1
        await self.respond(reader, writer)

    async def respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = json.loads(await reader.readexactly(length))
        key = (body["request_id"], body["tweet_id"], body["action"])
        self.attempts[key] += 1
        step = self.plan(self.attempts[key])
        if step.startswith("record"):
            new = key not in self.recorded
            self.recorded[key] += int(new)
            if step == "record":
                await self.answer(writer, 200, {"recorded": new, **_fields(body)})
        elif step == "503":
            await self.answer(writer, 503, {"detail": "event log unavailable"})
        elif step == "reject":
            await self.answer(writer, 422, {"detail": [{"loc": ["body", "action"]}]})
        writer.close()

    @staticmethod
    async def answer(writer: asyncio.StreamWriter, status: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()


def _fields(body: dict[str, object]) -> dict[str, object]:
    return {name: body[name] for name in ("request_id", "tweet_id", "action")}


async def post_engagements(
    service: FlakyService, tweets: range, retries: int = 5
) -> tuple[list[object], ServiceClient]:
    server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    policy = RetryPolicy(retries=retries, backoff_s=0.001, backoff_max_s=0.01)
    try:
        async with ServiceClient(
            f"http://127.0.0.1:{port}", concurrency=3, retry=policy, timeout_s=5
        ) as client:
            answers = await asyncio.gather(
                *(client.engagement(REQUEST_ID, 1, tweet, "fav") for tweet in tweets),
                return_exceptions=True,
            )
    finally:
        server.close()
        await server.wait_closed()
    return list(answers), client


def test_each_engagement_is_recorded_once_through_drops_503s_and_lost_answers() -> None:
    steps = {1: "drop", 2: "503", 3: "record-drop"}
    service = FlakyService(lambda attempt: steps.get(attempt, "record"))
    answers, client = asyncio.run(post_engagements(service, range(1, 9)))
    assert all(isinstance(a, dict) for a in answers), answers
    assert set(service.recorded.values()) == {1} and len(service.recorded) == 8
    assert set(service.attempts.values()) == {4}
    # The answer of the attempt that recorded was lost: the retry is a repeat, not a new record.
    assert all(a["recorded"] is False for a in answers)  # type: ignore[index]
    assert client.stats.retries["engagement"] == 8 * 3
    assert client.stats.latency_percentiles()["engagement"]["count"] == 8
    assert 1 < service.most_busy <= 3  # concurrent, and never past the client's bound


def test_a_rejected_request_is_never_retried_but_counted_with_its_detail() -> None:
    service = FlakyService(lambda attempt: "reject")
    answers, client = asyncio.run(post_engagements(service, range(1, 4)))
    assert answers == [None, None, None]
    assert set(service.attempts.values()) == {1}
    assert client.stats.rejected["engagement"] == 3
    rejection = client.stats.rejections[0]
    assert (rejection.endpoint, rejection.status) == ("engagement", 422)
    assert rejection.detail == [{"loc": ["body", "action"]}]


def test_a_request_failing_past_its_retries_stops_the_run_naming_the_endpoint() -> None:
    service = FlakyService(lambda attempt: "503")
    answers, _ = asyncio.run(post_engagements(service, range(1, 2), retries=2))
    (error,) = answers
    assert isinstance(error, ServiceUnavailableError)
    assert "/engagement failed 3 times" in str(error) and "HTTP 503" in str(error)
    assert not service.recorded


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(retries=5, backoff_s=0.5, backoff_max_s=3.0)
    assert [policy.wait_s(a) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_client_needs_at_least_one_request_in_flight() -> None:
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        ServiceClient("http://x", concurrency=0, retry=RetryPolicy(0, 1, 1), timeout_s=1)


def test_a_runs_client_figures_add_up_its_days() -> None:
    run, day = ClientStats(), ClientStats()
    day.latencies_ms["feed"].extend([10.0, 20.0, 30.0])
    day.retries["feed"] += 2
    day.rejected["engagement"] += 1
    run.absorb(day)
    run.absorb(day)
    latency = run.latency_percentiles()["feed"]
    assert latency["count"] == 6 and latency["p50_ms"] == 20.0 and latency["p99_ms"] <= 30.0
    assert (run.retries["feed"], run.rejected["engagement"]) == (4, 2)
