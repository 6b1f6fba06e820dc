"""What Ray's workers get: the repository's own packages, wherever this module sits."""

from __future__ import annotations

from pathlib import Path

import pipelines
from pipelines import ray_runtime


def test_the_package_shipped_to_a_cluster_is_this_checkouts_pipelines() -> None:
    assert Path(pipelines.__file__).resolve().parent == ray_runtime.PACKAGE_DIR
    assert (ray_runtime.PACKAGE_DIR / "steps.py").is_file()
