"""Start and stop the feedrank Serve application on a local (or configured) Ray cluster."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

from ray import serve

from pipelines.config import FeedrankConfig
from serving.app import APP_NAME, AppArgs, build_app, portable_config

log = logging.getLogger(__name__)


def base_url(cfg: FeedrankConfig) -> str:
    return f"http://{cfg.serve.host}:{cfg.serve.port}"


def start(cfg: FeedrankConfig, blocking: bool = False) -> str:
    """Deploy the app with `cfg` on HTTP ``serve.host:serve.port``; returns the base URL.

    Initializes Ray through `pipelines.ray_runtime.init_ray`. Returns once every deployment
    is running; with `blocking`, serves until Ctrl-C and then shuts Serve down.
    """
    from pipelines.ray_runtime import init_ray

    init_ray(cfg)
    serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port})
    app = build_app(AppArgs(config=cfg.name, resolved=portable_config(cfg)))
    serve.run(app, name=APP_NAME, route_prefix="/", logging_config={"enable_access_log": False})
    url = base_url(cfg)
    log.info("feedrank is serving on %s (docs at %s/docs)", url, url)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
    return url


def stop() -> None:
    """Delete the app and shut Serve's system actors down (Ray itself keeps running)."""
    serve.shutdown()


def wait_healthy(url: str, timeout: float = 120.0, interval: float = 0.5) -> dict[str, Any]:
    """Poll ``GET {url}/healthz`` until it answers 200; returns its JSON body.

    Raises TimeoutError (with the last error seen) when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/healthz", timeout=5) as response:
                if response.status == 200:
                    body: dict[str, Any] = json.loads(response.read())
                    return body
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = repr(exc)
        time.sleep(interval)
    raise TimeoutError(f"{url}/healthz not healthy after {timeout} s: {last_error}")
