"""Real Ray Train fine-tuning of the text encoder on a tiny three-topic corpus (2 CPU workers)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.config import EncoderConfig, FeedrankConfig
from pipelines.models.text_encoder import TextEmbedder, in_batch_softmax_loss
from pipelines.ray_runtime import ray_session
from pipelines.train.encoder import build_pairs, train_encoder

pytestmark = pytest.mark.integration

TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "football": (
        [
            "The striker",
            "Our goalkeeper",
            "The captain",
            "The winger",
            "The home side",
            "The coach",
        ],
        [
            "scored a late penalty",
            "kept a clean sheet",
            "was sent off for a rough tackle",
            "headed in a corner",
            "won the derby at the stadium",
            "celebrated promotion with fans",
        ],
        ["in stoppage time", "last night", "this season", "after extra time", "in the cup final"],
    ),
    "cooking": (
        ["My grandmother", "The chef", "I", "My roommate", "The bakery", "Our neighbour"],
        [
            "baked a sourdough loaf",
            "simmered a tomato sauce",
            "roasted garlic with rosemary",
            "whisked eggs for an omelette",
            "marinated chicken in yogurt",
            "kneaded fresh pasta dough",
        ],
        ["for dinner", "this morning", "in a cast iron pan", "with fresh basil", "for the weekend"],
    ),
    "astronomy": (
        [
            "The telescope",
            "NASA",
            "An amateur astronomer",
            "The observatory",
            "A space probe",
            "The rover",
        ],
        [
            "spotted a distant galaxy",
            "photographed the rings of Saturn",
            "tracked a comet",
            "measured the light of a supernova",
            "mapped craters on the moon",
            "found an exoplanet around a dwarf star",
        ],
        ["last night", "this week", "through clear skies", "during the eclipse", "before dawn"],
    ),
}


def make_corpus(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tweets (tweet_id, topic, text, split) and a training engagement log over the train split."""
    rows = []
    for topic, parts in TOPICS.items():
        sentences = [" ".join(words) for words in itertools.product(*parts)]
        chosen = rng.choice(len(sentences), 60, replace=False)
        for rank, index in enumerate(chosen):
            split = "train" if rank < 40 else "heldout"
            rows.append({"topic": topic, "text": sentences[index], "split": split})
    tweets = pd.DataFrame(rows).rename_axis("tweet_id").reset_index()

    log = []
    start = pd.Timestamp("2026-03-02")
    for viewer in range(30):  # 10 viewers per topic, 8 engagements each -> 7 pairs each
        topic = list(TOPICS)[viewer % 3]
        pool = tweets[(tweets["topic"] == topic) & (tweets["split"] == "train")]["tweet_id"]
        for k, tweet_id in enumerate(rng.choice(pool.to_numpy(), 8, replace=False)):
            log.append(
                {
                    "viewer_id": viewer,
                    "tweet_id": int(tweet_id),
                    "engaged_at": start + pd.Timedelta(hours=int(k * 5 + viewer % 5)),
                }
            )
    return tweets, pd.DataFrame(log)


def heldout_quality(embedder: TextEmbedder, tweets: pd.DataFrame, temperature: float) -> dict:
    """Held-out viewers (2 engaged held-out tweets each) vs held-out candidates of all topics.

    auc: mean over viewers of P(same-topic candidate scores above an other-topic one);
    loss: in-batch softmax loss of (viewer, one more same-topic tweet) pairs.
    """
    held = tweets[tweets["split"] == "heldout"].reset_index(drop=True)
    vectors = embedder.embed(held["text"].tolist())
    aucs, viewers, positives = [], [], []
    for topic in TOPICS:
        index = np.flatnonzero(held["topic"] == topic)
        for v in range(6):
            history, target = index[2 * v : 2 * v + 2], index[12 + v]
            viewer = embedder.embed_viewers(vectors[history][None])[0]
            candidates = np.setdiff1d(np.arange(len(held)), history)
            scores = vectors[candidates] @ viewer
            same = held["topic"].to_numpy()[candidates] == topic
            aucs.append((scores[same][:, None] > scores[~same][None, :]).mean())
            viewers.append(viewer)
            positives.append(vectors[target])
    loss = in_batch_softmax_loss(
        torch.from_numpy(np.stack(viewers)), torch.from_numpy(np.stack(positives)), temperature
    )
    return {"auc": float(np.mean(aucs)), "loss": float(loss)}


def test_fine_tuning_lowers_the_loss_and_keeps_topics_apart(tmp_path, monkeypatch):
    """Train 10 steps, then rerun the same run to 15: it resumes from the step-10 checkpoint."""
    monkeypatch.setenv("FEEDRANK_HOME", str(tmp_path / "home"))
    encoder = EncoderConfig(
        history_size=2, max_seq_len=24, train_steps=10, batch_size=16, num_workers=2, lr=5e-4
    )
    tweets, log = make_corpus(np.random.default_rng(0))
    pairs = build_pairs(log, tweets.set_index("tweet_id")["text"], encoder.history_size)
    assert len(pairs) == 210
    pairs_path = tmp_path / "pairs.parquet"
    pairs.to_parquet(pairs_path)

    first_cfg = FeedrankConfig(encoder=encoder)
    cfg = FeedrankConfig(encoder=encoder.model_copy(update={"train_steps": 15}))
    with ray_session(cfg):
        first = train_encoder(first_cfg, pairs_path, tmp_path / "encoder", run_name="enc-test")
        result = train_encoder(cfg, pairs_path, tmp_path / "encoder", run_name="enc-test")
    print(first, result, sep="\n")

    assert first["steps"] == 10 and first["resumed_from_step"] == 0
    assert result["steps"] == 15 and result["resumed_from_step"] == 10
    assert [point["step"] for point in result["loss_curve"]] == [1, 10, 15]
    assert result["loss_curve"][:2] == first["loss_curve"]
    assert result["loss_last"] < result["loss_first"] - 0.2

    tuned = TextEmbedder.load(result["out_dir"])
    untuned = TextEmbedder.pretrained(cfg.encoder)
    before = heldout_quality(untuned, tweets, cfg.encoder.temperature)
    after = heldout_quality(tuned, tweets, cfg.encoder.temperature)
    print({"untuned": before, "tuned": after})
    assert after["auc"] >= before["auc"] - 0.01 and after["auc"] > 0.9
    assert after["loss"] < before["loss"] - 0.1
