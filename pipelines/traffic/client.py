"""The simulated users' HTTP client of the live service (asyncio, httpx).

At most ``traffic.concurrency`` requests are in flight at once (a semaphore shared by every
session). A request that fails on the way (a connection error, a timeout, a 5xx) is retried with
exponential backoff, up to ``traffic.retries`` times: that is safe because the service records an
engagement once per (request_id, tweet_id, action) and a posted tweet once per tweet_id, so a
retry of a request whose answer was lost records nothing twice. A 4xx is the client's mistake: it
is never retried, but counted and kept with the service's detail for the run's report. A request
that still fails after its last retry raises :class:`ServiceUnavailableError`: the run stops
rather than lose what a user did.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import numpy as np

from pipelines.config import FeedrankConfig

KEPT_REJECTIONS = 50  # the first rejections kept with their detail (all are counted)


class ServiceUnavailableError(RuntimeError):
    """A request failed on every attempt (connection errors, timeouts or 5xx)."""


@dataclass(frozen=True)
class Rejection:
    """A 4xx answer: the endpoint, the status and the service's detail."""

    endpoint: str
    status: int
    detail: Any


@dataclass
class ClientStats:
    """What the client saw, per endpoint (``feed``, ``engagement``, ``conversation``, ``tweets``,
    ``healthz``): latencies (ms, of the attempt that answered), retries, rejections."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    retries: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)

    def latency_percentiles(self) -> dict[str, dict[str, float]]:
        """``{endpoint: {"p50_ms", "p99_ms", "count"}}`` of the answered requests."""
        return {
            endpoint: {
                "p50_ms": float(np.percentile(values, 50)),
                "p99_ms": float(np.percentile(values, 99)),
                "count": len(values),
            }
            for endpoint, values in sorted(self.latencies_ms.items())
            if values
        }

    def absorb(self, other: ClientStats) -> None:
        """Add `other`'s figures to these (a run's from its days')."""
        for endpoint, values in other.latencies_ms.items():
            self.latencies_ms[endpoint].extend(values)
        self.retries.update(other.retries)
        self.rejected.update(other.rejected)
        room = max(0, KEPT_REJECTIONS - len(self.rejections))
        self.rejections.extend(other.rejections[:room])

    def summary(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_percentiles(),
            "retries": dict(self.retries),
            "rejected": dict(self.rejected),
            "rejections": [vars(r) for r in self.rejections],
        }


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed request is tried again."""

    retries: int
    backoff_s: float
    backoff_max_s: float

    def wait_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return float(min(self.backoff_s * 2.0**attempt, self.backoff_max_s))


class ServiceClient:
    """The endpoints simulated users call, on the service at ``base_url``.

    Use as an async context manager (it owns one ``httpx.AsyncClient``). Each method answers the
    response body, or None when the service rejected the request (4xx, see ``stats``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int,
        retry: RetryPolicy,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url
        self.retry = retry
        self.stats = ClientStats()
        self._slots = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_s, limits=limits, transport=transport
        )

    @classmethod
    def of(cls, cfg: FeedrankConfig) -> ServiceClient:
        traffic = cfg.traffic
        return cls(
            cfg.service_url,
            concurrency=traffic.concurrency,
            retry=RetryPolicy(traffic.retries, traffic.backoff_s, traffic.backoff_max_s),
            timeout_s=traffic.timeout_s,
        )

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    # -------------------------------------------------------------------------- endpoints
    async def healthz(self) -> dict[str, Any] | None:
        return await self._call("GET", "/healthz")

    async def feed(
        self,
        user_id: int,
        limit: int,
        *,
        cursor: str | None = None,
        policy: str | None = None,
        synthetic: bool = False,
    ) -> dict[str, Any] | None:
        """A feed page; ``policy`` None leaves the service's default (its ranker); a
        ``synthetic`` page (a probe) is logged but never becomes training data."""
        body: dict[str, Any] = {"user_id": user_id, "limit": limit}
        if synthetic:
            body["synthetic"] = True
        if cursor is not None:
            body["cursor"] = cursor
        if policy is not None:
            body["policy"] = policy
        return await self._call("POST", "/feed", body)

    async def engagement(
        self, request_id: str, user_id: int, tweet_id: int, action: str, dwell_ms: int | None = None
    ) -> dict[str, Any] | None:
        body: dict[str, Any] = {
            "request_id": request_id,
            "user_id": user_id,
            "tweet_id": tweet_id,
            "action": action,
        }
        if dwell_ms is not None:
            body["dwell_ms"] = dwell_ms
        return await self._call("POST", "/engagement", body)

    async def conversation(self, tweet_id: int, viewer_id: int) -> dict[str, Any] | None:
        return await self._call(
            "POST", "/conversation", {"tweet_id": tweet_id, "viewer_id": viewer_id}
        )

    async def post_tweets(self, tweets: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
        return await self._call("POST", "/tweets", {"tweets": list(tweets)})

    # ---------------------------------------------------------------------------- retries
    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """One request with retries: the body of a 2xx, None after a 4xx."""
        endpoint = path.strip("/")
        last_error = ""
        for attempt in range(self.retry.retries + 1):
            if attempt:
                self.stats.retries[endpoint] += 1
                await asyncio.sleep(self.retry.wait_s(attempt - 1))
            try:
                response = await self._attempt(method, path, endpoint, body)
            except (httpx.TransportError, httpx.TimeoutException) as error:
                last_error = f"{type(error).__name__}: {error}"
                continue
            if response.status_code >= 500:
                last_error = f"HTTP {response.status_code}: {response.text[:500]}"
                continue
            if response.status_code >= 400:
                self._reject(endpoint, response)
                return None
            answer: dict[str, Any] = response.json()
            return answer
        raise ServiceUnavailableError(
            f"{method} {self.base_url}{path} failed {self.retry.retries + 1} times; "
            f"last: {last_error}"
        )

    async def _attempt(
        self, method: str, path: str, endpoint: str, body: dict[str, Any] | None
    ) -> httpx.Response:
        """One attempt inside a concurrency slot; its latency is kept when it answers below
        500."""
        async with self._slots:
            started = time.perf_counter()
            response = await self._http.request(method, path, json=body)
            if response.status_code < 500:
                elapsed_ms = 1000.0 * (time.perf_counter() - started)
                self.stats.latencies_ms[endpoint].append(elapsed_ms)
            return response

    def _reject(self, endpoint: str, response: httpx.Response) -> None:
        self.stats.rejected[endpoint] += 1
        if len(self.stats.rejections) < KEPT_REJECTIONS:
            try:
                body = response.json()
            except ValueError:
                body = response.text[:500]
            detail = body.get("detail", body) if isinstance(body, dict) else body
            self.stats.rejections.append(Rejection(endpoint, response.status_code, detail))
