"""One background task run at a fixed interval on a daemon thread (a replica's syncs and pushes)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls `task` every `interval_s` seconds on a daemon thread named `name`, from
    :meth:`start` until :meth:`stop`. A failing call is logged (``"<what> failed"``) and the next
    one is tried: the replica keeps serving what it holds."""

    def __init__(self, name: str, what: str, task: Callable[[], object]) -> None:
        self.name, self.what, self.task = name, what, task
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, interval_s: float) -> None:
        """Start the thread (once; a second call does nothing). Raises ValueError for an
        interval that is not positive."""
        if interval_s <= 0:
            raise ValueError(f"{self.what}: the interval must be > 0 seconds, got {interval_s}")
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.task()
                except Exception as exc:
                    log.warning("%s failed (%r)", self.what, exc)

        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread, waiting up to `timeout_s` for a call in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
