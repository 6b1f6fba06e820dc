"""The text encoder's pure parts: shapes, the contrastive loss, logQ, leak-free training pairs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from pipelines.config import EncoderConfig
from pipelines.models.text_encoder import (
    TextEmbedder,
    TwoTower,
    in_batch_softmax_loss,
    resolve_model_path,
)
from pipelines.train.encoder import build_pairs, collate_pairs, sample_batch

TEXTS = [
    "The striker scored a late penalty in the derby",
    "Slow-cooked short ribs with garlic butter tonight",
    "Jupiter and its moons through the telescope",
]


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    torch.manual_seed(0)
    return TextEmbedder.pretrained(EncoderConfig(embedding_dim=32, max_seq_len=24))


def test_resolve_model_path_names_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        resolve_model_path(EncoderConfig(model_path=str(tmp_path / "nope")))
    assert (resolve_model_path(EncoderConfig()) / "config.json").is_file()


def test_tweet_encoder_gives_unit_vectors_of_the_configured_size(embedder):
    batch = embedder.tokenize(TEXTS)
    with torch.no_grad():
        out = embedder.encoder(batch["input_ids"], batch["attention_mask"])
    assert out.shape == (3, 32)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    vectors = embedder.embed(TEXTS + TEXTS[:1], batch_size=2)  # order kept across length sorting
    assert vectors.shape == (4, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], vectors[3], atol=1e-5)
    np.testing.assert_allclose(vectors[:3], out.numpy(), atol=1e-5)


def test_untuned_projection_keeps_the_pretrained_neighbours(embedder):
    """Orthogonal init: a paraphrase stays nearer than another topic, as in the pretrained model."""
    vectors = embedder.embed(
        [TEXTS[0], "Our forward netted a penalty kick in the big game", TEXTS[1]]
    )
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1


def test_freezing_leaves_only_top_layers_and_heads_trainable(embedder):
    model = TwoTower(embedder.encoder)
    model.encoder.freeze_lower_layers(2)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any(".layer.5." in name for name in trainable)
    assert any(".layer.4." in name for name in trainable)
    assert not any(".layer.3." in name or "embeddings" in name for name in trainable)
    assert {"encoder.projection.weight", "viewer_head.linear.weight"} <= trainable


def test_two_tower_shapes_and_empty_history_slots(embedder):
    model = TwoTower(embedder.encoder).eval()
    batch = collate_pairs(embedder.tokenizer, [[TEXTS[0]], [TEXTS[1], TEXTS[2]]], TEXTS[:2], 2, 24)
    assert batch["history_ids"].shape[:2] == (2, 2)
    assert batch["history_mask"][0, 1].sum() == 0  # viewer 0 has a single engaged tweet
    with torch.no_grad():
        viewer, tweet = model(**batch)
        alone = model.encode_history(batch["history_ids"][:1, :1], batch["history_mask"][:1, :1])
    assert viewer.shape == tweet.shape == (2, 32)
    # Identity-initialised head: a one-tweet viewer is that tweet's embedding; padding is ignored.
    torch.testing.assert_close(viewer[0], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        viewer[0], torch.from_numpy(embedder.embed(TEXTS[:1])[0]), atol=1e-5, rtol=0
    )


def test_loss_is_lower_for_aligned_pairs_than_shuffled():
    torch.manual_seed(0)
    tweet = F.normalize(torch.randn(8, 16), dim=-1)
    viewer = F.normalize(tweet + 0.1 * torch.randn(8, 16), dim=-1)
    aligned = in_batch_softmax_loss(viewer, tweet, temperature=0.1)
    shuffled = in_batch_softmax_loss(viewer, tweet[torch.randperm(8)], temperature=0.1)
    assert aligned < shuffled - 1.0


def test_logq_correction_penalises_popular_targets():
    torch.manual_seed(0)
    tweet = F.normalize(torch.randn(4, 16), dim=-1)
    viewer = F.normalize(tweet + 0.5 * torch.randn(4, 16), dim=-1)
    plain = in_batch_softmax_loss(viewer, tweet, 0.1, reduction="none")
    # A uniform sampling distribution is a constant shift: no change.
    uniform = torch.full((4,), math.log(0.25))
    torch.testing.assert_close(in_batch_softmax_loss(viewer, tweet, 0.1, uniform, "none"), plain)
    # Tweet 0 is popular: as a negative it is discounted less than the rare ones are boosted,
    # so the row whose positive is tweet 0 must win against relatively stronger negatives.
    skewed = torch.log(torch.tensor([0.7, 0.1, 0.1, 0.1]))
    corrected = in_batch_softmax_loss(viewer, tweet, 0.1, skewed, "none")
    assert corrected[0] > plain[0]
    assert (corrected[1:] < plain[1:]).all()


def test_build_pairs_never_uses_the_future():
    rng = np.random.default_rng(3)
    n = 400
    engagements = pd.DataFrame(
        {
            "viewer_id": rng.integers(0, 15, n),
            "tweet_id": rng.integers(0, 60, n),
            # coarse clock so that several engagements share an instant
            "engaged_at": pd.Timestamp("2026-03-02") + pd.to_timedelta(rng.integers(0, 40, n), "h"),
        }
    ).sample(frac=1.0, random_state=1)
    texts = {tweet: f"tweet number {tweet}" for tweet in range(55)}  # 55..59 have no text
    pairs = build_pairs(engagements, texts, history_size=3)

    known = engagements[engagements["tweet_id"] < 55]
    assert 0 < len(pairs) < len(known)
    assert set(pairs.columns) >= {"history", "target", "target_log_q", "history_tweet_ids"}
    for row in pairs.itertuples():
        past = known[(known["viewer_id"] == row.viewer_id) & (known["engaged_at"] < row.engaged_at)]
        past = past.sort_values("engaged_at", kind="stable")
        assert 1 <= len(row.history) <= 3
        assert len(row.history) == min(3, len(past))
        assert row.history == [texts[t] for t in row.history_tweet_ids]
        assert row.target == texts[row.tweet_id]
        # exactly the latest earlier engagements, most recent last (ties keep log order)
        assert row.history_tweet_ids == past["tweet_id"].iloc[-len(row.history) :].tolist()
    # engagements without an earlier one by the same viewer give no pair
    first = known.groupby("viewer_id")["engaged_at"].transform("min") == known["engaged_at"]
    assert len(pairs) == int((~first).sum())
    shares = pairs["tweet_id"].value_counts(normalize=True)
    np.testing.assert_allclose(np.exp(pairs["target_log_q"]), pairs["tweet_id"].map(shares))


def test_build_pairs_history_is_the_latest_earlier_engagements():
    t0 = pd.Timestamp("2026-03-02")
    engagements = pd.DataFrame(
        {
            "viewer_id": [1, 1, 1, 1, 1, 2],
            "tweet_id": [10, 11, 12, 13, 14, 15],
            "engaged_at": [
                t0,
                t0 + pd.Timedelta("1h"),
                t0 + pd.Timedelta("2h"),
                t0 + pd.Timedelta("2h"),
                t0 + pd.Timedelta("3h"),
                t0,
            ],
        }
    )
    texts = {t: f"t{t}" for t in range(10, 16)}
    pairs = build_pairs(engagements, texts, history_size=2).set_index("tweet_id")
    assert pairs.loc[11, "history"] == ["t10"]
    assert pairs.loc[12, "history"] == ["t10", "t11"]
    assert pairs.loc[13, "history"] == ["t10", "t11"]  # same instant as 12: not seen
    assert pairs.loc[14, "history_tweet_ids"] in ([12, 13], [13, 12])
    assert 10 not in pairs.index and 15 not in pairs.index


def test_sample_batch_draws_distinct_targets_deterministically():
    targets = np.array(["a", "b", "a", "c", "b", "d"], dtype=object)
    rows = sample_batch(targets, 10, seed=0, rank=0, step=1)
    assert len(set(targets[rows])) == len(rows) == 4
    np.testing.assert_array_equal(rows, sample_batch(targets, 10, seed=0, rank=0, step=1))


def test_build_pairs_of_an_empty_log_is_empty():
    empty = pd.DataFrame(
        {"viewer_id": [], "tweet_id": [], "engaged_at": pd.to_datetime([])}
    ).astype({"viewer_id": "int64", "tweet_id": "int64"})
    pairs = build_pairs(empty, {1: "a"}, history_size=2)
    assert len(pairs) == 0 and {"history", "target", "target_log_q"} <= set(pairs.columns)
