"""The `feedrank` command: the offline commands of `pipelines.cli` plus the serving ones."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli import ConfigOption, app, setup_logging
from pipelines.config import load_config


@app.command()
def serve(
    config: ConfigOption = "default",
    block: Annotated[bool, typer.Option(help="Keep serving until interrupted.")] = True,
) -> None:
    """Start the Ray Serve application (champion, and challenger when registered)."""
    from serving.run import start

    setup_logging()
    url = start(load_config(config), blocking=block)
    typer.echo(f"serving on {url}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
