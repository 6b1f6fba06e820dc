"""The package's files are read by checksum, never by import, and no real id survives re-keying."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.realtrees.rekey import Rekeyer, load_or_create_salt
from pipelines.realtrees.repair import rekey_posts
from pipelines.realtrees.source import DATA_FILES, TreesDataError, data_file, read_posts

from .handmade import account, chain_of_replies, raw_posts

SALT = bytes(range(32))


def test_a_file_whose_checksum_differs_is_refused_before_it_is_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Tripwire:
        def __reduce__(self):  # runs at unpickling: the file must never get that far
            return (marker.touch, ())

    forged = tmp_path / "dataset_twitter_no_text.pkl"
    forged.write_bytes(pickle.dumps(Tripwire()))
    with pytest.raises(TreesDataError, match="sha256 .* refusing to unpickle"):
        read_posts("twitter", forged)
    assert not marker.exists()


def test_an_unknown_platform_is_named_in_the_error() -> None:
    with pytest.raises(TreesDataError, match="'mastodon'.*twitter.*reddit"):
        read_posts("mastodon")


def test_the_installed_data_files_carry_the_published_checksums_without_importing_the_package() -> (
    None
):
    for platform, (_, expected) in DATA_FILES.items():
        path = data_file(platform)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
    assert "delab_trees" not in sys.modules  # located by its spec, its __init__ never ran


def test_rekeying_keeps_no_real_account_or_post_id() -> None:
    raw = raw_posts({"a": chain_of_replies(1, 3), "b": chain_of_replies(2, 2)})
    posts = rekey_posts(raw, Rekeyer(SALT, "twitter"))
    real_accounts = set(raw["author_id"])
    stored = set(posts.select_dtypes("number").to_numpy().ravel().tolist())
    assert not real_accounts & stored
    assert not set(raw["post_id"]) & set(map(str, stored))
    assert set(posts.columns).isdisjoint({"author_id", "post_id", "tree_id", "parent_id"})
    assert (posts["author"] > 0).all() and posts["author"].dtype == np.int64


def test_the_same_salt_gives_the_same_ids_and_another_salt_other_ids() -> None:
    raw = raw_posts({"a": chain_of_replies(1, 3)})
    first = rekey_posts(raw, Rekeyer(SALT, "twitter"))
    again = rekey_posts(raw, Rekeyer(SALT, "twitter"))
    other = rekey_posts(raw, Rekeyer(bytes(32), "twitter"))
    assert first["author"].tolist() == again["author"].tolist()
    assert not set(first["author"]) & set(other["author"])


def test_one_account_keeps_one_lake_id_across_trees_and_platforms_do_not_share_ids() -> None:
    raw = raw_posts({"a": chain_of_replies(7, 1), "b": chain_of_replies(7, 1)})
    twitter = rekey_posts(raw, Rekeyer(SALT, "twitter"))
    roots = twitter[twitter["parent"] < 0]
    assert roots["author"].nunique() == 1
    reddit = Rekeyer(SALT, "reddit").one("author", account(7))
    assert reddit != roots["author"].iloc[0]


def test_the_salt_is_created_once_for_the_owner_alone_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "trees" / "rekey.salt"
    salt = load_or_create_salt(path)
    assert len(salt) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_salt(path) == salt


def test_a_truncated_salt_is_an_error_naming_its_size(tmp_path: Path) -> None:
    path = tmp_path / "rekey.salt"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="5 bytes"):
        load_or_create_salt(path)


def test_the_config_offers_exactly_the_platforms_the_package_ships() -> None:
    from typing import get_args

    from pipelines.config import TreesConfig

    assert get_args(TreesConfig.model_fields["platform"].annotation) == tuple(DATA_FILES)
