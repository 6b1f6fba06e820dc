"""Print (and try) a working curl example against the running app: `python -m serving.example`."""

from __future__ import annotations

import json
import sys

import httpx
import typer

from pipelines.config import load_config
from serving.candidates.world_index import WorldIndex
from serving.run import base_url, wait_healthy


def main(config: str = typer.Option("default", "--config", "-c")) -> None:
    cfg = load_config(config)
    url = base_url(cfg)
    health = wait_healthy(url, timeout=180)
    index = WorldIndex.load(cfg)
    user_id = next(u for u in range(1, index.n_users + 1) if len(index.candidates(u)) > 0)
    body = {"user_id": int(user_id), "limit": 5}
    # This try is a probe, not a viewer's visit: marked synthetic, it is not exported for training.
    feed = httpx.post(f"{url}/feed", json={**body, "synthetic": True}, timeout=60)
    typer.echo(f"\nfeedrank is serving on {url} (models: {json.dumps(health)})")
    typer.echo(f"OpenAPI docs: {url}/docs")
    typer.echo("\nTry it:")
    typer.echo(
        f"  curl -s -X POST {url}/feed -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    )
    typer.echo(f"  -> HTTP {feed.status_code}: {feed.text[:400]}...")
    sizes = index.conversation_sizes()
    root = int(sizes.sort_values(ascending=False).index[0]) if len(sizes) else None
    if root is not None:
        convo = {"tweet_id": root, "viewer_id": int(user_id)}
        typer.echo(
            f"  curl -s -X POST {url}/conversation -H 'Content-Type: application/json' "
            f"-d '{json.dumps(convo)}'"
        )
    typer.echo("Stop the server with `make stop`.")
    if feed.status_code != 200:
        sys.exit(1)


if __name__ == "__main__":
    typer.run(main)
