"""`feedrank import-trees` on hand-made trees: a lake of its own, canonical tables, lake ids."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from pipelines.realtrees import importer
from pipelines.schema import read_table

from .handmade import chain_of_replies, raw_posts

TREES = {
    "a": chain_of_replies(1, 3) + [("deep", "r0", 1, 0.5)],  # repaired: before its parent
    "b": chain_of_replies(2, 2, first_minute=60 * 30),  # the next day
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path))
    raw = raw_posts(TREES, toxicity={("a", "r1"): float("nan")})
    monkeypatch.setattr(importer, "read_posts", lambda platform: raw.copy())
    return tmp_path


def test_the_trees_become_conversations_in_a_lake_of_their_own(home: Path) -> None:
    cfg = load_config("smoke")
    summary = importer.import_trees(cfg, "twitter")
    lake = cfg.paths.trees_lake("twitter")
    assert lake == home / "trees" / "twitter" and not (home / "lake").exists()
    tweets = read_table(lake, "tweets")
    assert len(tweets) == 8 and tweets["tweet_id"].is_unique
    roots = tweets[tweets["in_reply_to_tweet_id"].isna()]
    assert len(roots) == 2 and (roots["conversation_id"] == roots["tweet_id"]).all()
    replies = tweets[tweets["in_reply_to_tweet_id"].notna()]
    assert replies["in_reply_to_tweet_id"].astype("int64").isin(tweets["tweet_id"]).all()
    assert tweets.groupby("conversation_id").size().sort_values().tolist() == [3, 5]
    assert (tweets["text"] == "[text withheld: 40 characters]").all()
    assert tweets["toxicity"].isna().sum() == 1
    users = read_table(lake, "users")
    assert sorted(users["user_id"]) == sorted(tweets["author_id"].unique())
    assert summary["conversations"] == 2 and summary["replies"] == 6 and summary["days"] == 2
    assert summary["repair"]["posts_with_repaired_time"] == 1


def test_the_lake_holds_no_real_account_id_and_a_reimport_gives_the_same_ids(home: Path) -> None:
    cfg = load_config("smoke")
    importer.import_trees(cfg, "twitter")
    lake = cfg.paths.trees_lake("twitter")
    first = read_table(lake, "tweets").sort_values("tweet_id").reset_index(drop=True)
    accounts = set(raw_posts(TREES)["author_id"])
    ids = pd.concat([first[c] for c in ("tweet_id", "author_id", "conversation_id")])
    assert not accounts & set(ids) and not accounts & set(read_table(lake, "users")["user_id"])
    importer.import_trees(cfg, "twitter")
    again = read_table(lake, "tweets").sort_values("tweet_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)


def test_the_command_prints_its_summary_as_json_last(home: Path) -> None:
    result = CliRunner().invoke(app, ["import-trees", "--platform", "twitter", "--config", "smoke"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["platform"] == "twitter" and summary["tweets"] == 8


def test_the_command_names_the_platforms_when_one_is_unknown(home: Path) -> None:
    result = CliRunner().invoke(app, ["import-trees", "--platform", "myspace", "--config", "smoke"])
    assert result.exit_code != 0
    assert "twitter" in result.output and "reddit" in result.output
