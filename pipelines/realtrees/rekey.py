"""Lake ids for the package's ids: a keyed hash, so that no real account id is stored or logged.

The package's ``author_id`` values are real account ids. Each id (and each post and tree id, so
the lake holds ids of one kind) becomes ``BLAKE2b(key=salt, "<platform>:<kind>:<id>")`` cut to a
positive int64 below 2**53. The salt is 32 random bytes created once under the state root
(``cfg.paths.trees_salt``): the same salt maps the same account to the same lake id on every
import and in every benchmark run (a persistent mapping that stores nothing but the salt), and
without it the hash cannot be inverted by hashing candidate account ids.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import numpy as np
import pandas as pd

SALT_BYTES = 32
# Lake ids are positive and below 2**53: a nullable id column (``in_reply_to_tweet_id``) reads
# back from parquet as float64, which holds every integer up to 2**53 exactly. Collisions among
# the package's ~600k posts stay unlikely (about 2e-5) and are checked on every call.
ID_MASK = (1 << 53) - 1


class RekeyCollisionError(RuntimeError):
    """Two distinct source ids hashed to one lake id (never seen; checked on every call)."""


def load_or_create_salt(path: Path) -> bytes:
    """The salt at `path`, created (32 random bytes, owner-only) when there is none."""
    if path.exists():
        salt = path.read_bytes()
        if len(salt) != SALT_BYTES:
            raise ValueError(f"{path} holds {len(salt)} bytes, not a {SALT_BYTES}-byte salt")
        return salt
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(SALT_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(salt)
    return salt


class Rekeyer:
    """Maps source ids of one platform to int64 lake ids with a keyed hash.

    Args:
        salt: the secret key (see :func:`load_or_create_salt`).
        platform: part of the hashed message, so two platforms never share an id.
    """

    def __init__(self, salt: bytes, platform: str) -> None:
        if len(salt) < 16:
            raise ValueError("the re-keying salt must be at least 16 bytes")
        self._salt = salt
        self.platform = platform

    def one(self, kind: str, value: object) -> int:
        """The lake id of one source id of a `kind` ("author", "post", ...)."""
        message = f"{self.platform}:{kind}:{value}".encode()
        digest = hashlib.blake2b(message, key=self._salt, digest_size=8).digest()
        return int.from_bytes(digest, "big") & ID_MASK

    def ids(self, kind: str, values: pd.Series) -> np.ndarray:
        """``[N]`` int64 lake ids of `values` (NaN/None stay missing as -1).

        Raises:
            RekeyCollisionError: two distinct values got the same id.
        """
        present = values.notna().to_numpy()
        distinct = pd.unique(values[present].astype(str))
        mapped = np.fromiter(
            (self.one(kind, v) for v in distinct), dtype=np.int64, count=len(distinct)
        )
        if len(np.unique(mapped)) != len(mapped):
            raise RekeyCollisionError(f"two {kind} ids of {self.platform} hashed to one lake id")
        lookup = pd.Series(mapped, index=distinct)
        out = np.full(len(values), -1, dtype=np.int64)
        out[present] = lookup.reindex(values[present].astype(str)).to_numpy(dtype=np.int64)
        return out
