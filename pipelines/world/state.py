"""The simulated world's latent state: its population, its tweet log, how lake ids map onto them,
and how the state is written to disk and read back.

Users and tweets are numbered 0..N-1 and 0..T-1 inside the world (their *indices*); the lake and
the service know them by *ids*: ``user_id = index + 1``, ``tweet_id = TWEET_ID_BASE + index``.
Times inside the world are seconds since the world's start (midnight UTC of
``cfg.world.start_date``); outside it they are UTC timestamps at microsecond resolution, the
lake's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TWEET_ID_BASE = 1_000_000  # tweet_id of the world's first tweet
STATE_FILE = "simulation.npz"  # the persisted state, inside cfg.paths.world_state


class WorldStateMissingError(FileNotFoundError):
    """No persisted world state: the world was never bootstrapped under this state root."""


class WorldStateMismatchError(ValueError):
    """A persisted world state built from another world config than the one asked for."""


class UnknownIdError(ValueError):
    """A user or tweet id the simulated world does not know."""


@dataclass
class Population:
    """Latent and observed attributes of the users, indexed by user index 0..N-1."""

    interests: np.ndarray  # [N, K] topic interest, rows sum to 1
    activity: np.ndarray  # [N] mean 1
    fitness: np.ndarray  # [N] heavy-tailed attractiveness as a followee
    quality: np.ndarray  # [N] author quality latent
    toxic_tendency: np.ndarray  # [N] mean toxicity of the author's posts
    language: np.ndarray  # [N] str
    frame: pd.DataFrame  # the `users` table


TWEET_LOG_COLUMNS: tuple[str, ...] = (
    "author",
    "topic",
    "created",
    "quality",
    "toxicity",
    "length",
    "has_video",
    "has_image",
    "is_reply",
    "conversation",
    "parent",
)


@dataclass
class TweetLog:
    """All tweets posted so far, as columnar arrays appended one day at a time."""

    author: list[np.ndarray] = field(default_factory=list)
    topic: list[np.ndarray] = field(default_factory=list)
    created: list[np.ndarray] = field(default_factory=list)  # seconds since world start
    quality: list[np.ndarray] = field(default_factory=list)
    toxicity: list[np.ndarray] = field(default_factory=list)
    length: list[np.ndarray] = field(default_factory=list)
    has_video: list[np.ndarray] = field(default_factory=list)
    has_image: list[np.ndarray] = field(default_factory=list)
    is_reply: list[np.ndarray] = field(default_factory=list)
    conversation: list[np.ndarray] = field(default_factory=list)  # index of the root tweet
    parent: list[np.ndarray] = field(default_factory=list)  # index of the parent, -1 for a root

    def column(self, name: str) -> np.ndarray:
        """``[T]`` values of one column over every tweet logged so far (read-only: the log
        keeps it, joined into one chunk, so the next read costs nothing)."""
        chunks: list[np.ndarray] = getattr(self, name)
        if not chunks:
            return np.empty(0)
        if len(chunks) > 1:
            joined = np.concatenate(chunks)
            joined.flags.writeable = False
            chunks[:] = [joined]
        return chunks[0]

    def __len__(self) -> int:
        return int(sum(len(a) for a in self.author))

    @classmethod
    def of_columns(cls, columns: Mapping[str, np.ndarray]) -> TweetLog:
        """A log holding ``columns`` (``{name: [T]}``, every TWEET_LOG_COLUMNS) as one chunk."""
        return cls(**{name: [np.asarray(columns[name])] for name in TWEET_LOG_COLUMNS})


# ---------------------------------------------------------------------- ids and times
def user_ids_of(index: np.ndarray) -> np.ndarray:
    """``[M]`` lake user ids (int64) of user indices."""
    return np.asarray(index).astype(np.int64) + 1


def tweet_ids_of(index: np.ndarray) -> np.ndarray:
    """``[M]`` lake tweet ids (int64) of tweet log indices."""
    return TWEET_ID_BASE + np.asarray(index).astype(np.int64)


def user_index_of(user_ids: np.ndarray, n_users: int) -> np.ndarray:
    """``[M]`` user indices of lake user ids; UnknownIdError names ids outside 1..n_users."""
    index = np.asarray(user_ids).astype(np.int64) - 1
    _check_range(index, n_users, "user", np.asarray(user_ids))
    return index


def tweet_index_of(tweet_ids: np.ndarray, n_tweets: int) -> np.ndarray:
    """``[M]`` tweet log indices of lake tweet ids; UnknownIdError names ids the log lacks."""
    index = np.asarray(tweet_ids).astype(np.int64) - TWEET_ID_BASE
    _check_range(index, n_tweets, "tweet", np.asarray(tweet_ids))
    return index


def _check_range(index: np.ndarray, size: int, kind: str, ids: np.ndarray) -> None:
    unknown = (index < 0) | (index >= size)
    if unknown.any():
        shown = ", ".join(str(i) for i in np.unique(ids[unknown])[:5])
        raise UnknownIdError(
            f"{int(unknown.sum())} {kind} id(s) the simulated world does not know (e.g. {shown}); "
            f"it has {size} {kind}s"
        )


def seconds_since(start: datetime, at: Any) -> np.ndarray:
    """``[M]`` float64 seconds since `start` of UTC timestamps `at` (anything ``pd.to_datetime``
    reads: a Series, a DatetimeIndex, datetime64 values), at microsecond resolution: the time
    :func:`timestamps_at` gives back maps to exactly the seconds it was made from, rounded to
    the microsecond."""
    stamps = pd.DatetimeIndex(pd.to_datetime(at, utc=True))
    if stamps.isna().any():
        raise ValueError("served times must be timestamps, not missing values")
    micros = (stamps - pd.Timestamp(start)) // pd.Timedelta(microseconds=1)
    return np.asarray(micros, dtype=np.int64) / 1e6


def timestamps_at(start: datetime, seconds: np.ndarray) -> pd.Series:
    """UTC timestamps (microsecond resolution) ``seconds`` ``[M]`` after `start`."""
    micros = np.round(np.asarray(seconds) * 1e6).astype(np.int64)
    return pd.Series(pd.Timestamp(start) + pd.to_timedelta(micros, unit="us"))


# ---------------------------------------------------------------------- persistence
# The state file holds flat named arrays: each piece of state packs into ``"<piece>.<name>"``
# arrays and unpacks from them. Strings are fixed-width unicode and timestamps int64, so the file
# loads without pickle.
def frame_arrays(prefix: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every column of `frame` as ``"<prefix>.<column>"``; UTC timestamps as naive datetime64."""
    arrays: dict[str, np.ndarray] = {}
    for name, values in frame.items():
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            arrays[f"{prefix}.{name}"] = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            arrays[f"{prefix}.{name}"] = values.to_numpy()
        else:
            arrays[f"{prefix}.{name}"] = values.to_numpy(dtype=str)
    return arrays


def frame_of(arrays: Mapping[str, np.ndarray], prefix: str) -> pd.DataFrame:
    """The frame :func:`frame_arrays` packed under `prefix`, columns in their order."""
    columns: dict[str, Any] = {}
    for key, values in arrays.items():
        if key.startswith(f"{prefix}."):
            is_time = np.issubdtype(values.dtype, np.datetime64)
            column = pd.Series(values)
            columns[key[len(prefix) + 1 :]] = column.dt.tz_localize("UTC") if is_time else column
    return pd.DataFrame(columns)


def population_arrays(pop: Population) -> dict[str, np.ndarray]:
    """The population's latents as ``"pop.<name>"`` arrays (its frame is the users table)."""
    return {
        "pop.interests": pop.interests,
        "pop.activity": pop.activity,
        "pop.fitness": pop.fitness,
        "pop.quality": pop.quality,
        "pop.toxic_tendency": pop.toxic_tendency,
        "pop.language": pop.language,
    }


def population_of(arrays: Mapping[str, np.ndarray], users: pd.DataFrame) -> Population:
    """The population :func:`population_arrays` packed, with the users table's own columns."""
    frame = users.drop(columns=["follower_count", "following_count"])
    return Population(
        interests=arrays["pop.interests"],
        activity=arrays["pop.activity"],
        fitness=arrays["pop.fitness"],
        quality=arrays["pop.quality"],
        toxic_tendency=arrays["pop.toxic_tendency"],
        language=arrays["pop.language"],
        frame=frame,
    )


def tweet_log_arrays(tweets: TweetLog) -> dict[str, np.ndarray]:
    """Every tweet log column, ``[T]``, as ``"tweets.<name>"``."""
    return {f"tweets.{name}": tweets.column(name) for name in TWEET_LOG_COLUMNS}


def tweet_log_of(arrays: Mapping[str, np.ndarray]) -> TweetLog:
    """The tweet log :func:`tweet_log_arrays` packed; WorldStateMismatchError for a state file
    written before the log had one of TWEET_LOG_COLUMNS."""
    missing = [name for name in TWEET_LOG_COLUMNS if f"tweets.{name}" not in arrays]
    if missing:
        raise WorldStateMismatchError(
            f"the world state lacks the tweet log's {', '.join(missing)}: it was written by an "
            "older world; rebuild the world (`feedrank build-world --rebuild`)"
        )
    return TweetLog.of_columns({name: arrays[f"tweets.{name}"] for name in TWEET_LOG_COLUMNS})


def ragged_arrays(prefix: str, rows: list[list[int]]) -> dict[str, np.ndarray]:
    """A list of int lists as ``"<prefix>.offsets"`` ``[R + 1]`` and ``"<prefix>.values"``."""
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    flat = [value for row in rows for value in row]
    return {
        f"{prefix}.offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        f"{prefix}.values": np.array(flat, dtype=np.int64),
    }


def ragged_of(arrays: Mapping[str, np.ndarray], prefix: str) -> list[list[int]]:
    offsets, values = arrays[f"{prefix}.offsets"], arrays[f"{prefix}.values"]
    return [values[lo:hi].tolist() for lo, hi in zip(offsets[:-1], offsets[1:], strict=True)]


def counts_arrays(prefix: str, counts: Mapping[int, int]) -> dict[str, np.ndarray]:
    """An int -> int mapping as ``"<prefix>.keys"`` and ``"<prefix>.values"``, in its order."""
    return {
        f"{prefix}.keys": np.fromiter(counts.keys(), dtype=np.int64, count=len(counts)),
        f"{prefix}.values": np.fromiter(counts.values(), dtype=np.int64, count=len(counts)),
    }


def counts_of(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[int, int]:
    keys, values = arrays[f"{prefix}.keys"], arrays[f"{prefix}.values"]
    return dict(zip(keys.tolist(), values.tolist(), strict=True))


def write_state(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write ``arrays`` and the JSON-able ``meta`` to the ``.npz`` file `path` atomically: a
    temporary file beside it, then a rename, so a reader finds the old state or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        payload: dict[str, Any] = {"meta": np.array(json.dumps(meta, sort_keys=True)), **arrays}
        with temporary.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **payload)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_meta(path: Path) -> dict[str, Any]:
    """The ``meta`` of the state file `path`, without reading its arrays."""
    with _open_state(path) as state:
        meta: dict[str, Any] = json.loads(str(state["meta"]))
    return meta


def read_state(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, meta)`` of the state file `path` (the inverse of :func:`write_state`)."""
    with _open_state(path) as state:
        arrays = {name: state[name] for name in state.files if name != "meta"}
        meta: dict[str, Any] = json.loads(str(state["meta"]))
    return arrays, meta


def _open_state(path: Path) -> Any:
    if not path.exists():
        raise WorldStateMissingError(
            f"no simulated world state at {path}: bootstrap the world first "
            "(`feedrank build-world` or `make run`)"
        )
    return np.load(path, allow_pickle=False)
