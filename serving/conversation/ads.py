"""Ad slots of a conversation page, filled from a simulated ads inventory.

The inventory is a small set of ad tweets by a few advertisers, generated from
``conversation.ad_seed`` (the same inventory on every replica). A page gets one slot per
``replies_per_ad`` replies shown, at most ``max_ads``, placed between the top-level threads of
the ``main`` section only (brand safety: no ad next to low-quality or abusive threads), evenly
spread, never before the first thread; at most one slot after each thread. Which ads fill the
slots is drawn per page from (viewer, focal tweet), so a page reloaded shows the same ads.

Ads are not replies: they are answered apart from the sections (``ads``, each marked ``is_ad``)
and never logged as served impressions, so they can never become reply training rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.config import ConversationConfig

_PRODUCTS = (
    "running shoes",
    "noise-cancelling headphones",
    "a meal kit",
    "a budget app",
    "a language course",
    "a standing desk",
    "a coffee subscription",
    "a travel card",
)
_PITCHES = (
    "Try it free for 30 days.",
    "Now 20% off.",
    "Rated 4.8 by 10,000 customers.",
    "Ships tomorrow.",
    "Made to last.",
    "See why people switch.",
)


@dataclass(frozen=True)
class Ad:
    ad_id: int
    advertiser_id: int
    text: str


@dataclass(frozen=True)
class PlacedAd:
    """An ad in a slot after `after_thread` top-level threads of the main section."""

    ad: Ad
    after_thread: int


class AdsInventory:
    """The simulated ads inventory: ``ad_inventory_size`` ads by ``ad_advertisers``
    advertisers, deterministic by ``ad_seed``."""

    def __init__(self, cfg: ConversationConfig) -> None:
        self.cfg = cfg
        rng = np.random.default_rng(cfg.ad_seed)
        n = cfg.ad_inventory_size
        advertisers = rng.integers(1, cfg.ad_advertisers + 1, size=n)
        products = rng.integers(0, len(_PRODUCTS), size=n)
        pitches = rng.integers(0, len(_PITCHES), size=n)
        self.ads = [
            Ad(
                ad_id=i + 1,
                advertiser_id=int(advertisers[i]),
                text=f"Advertiser {advertisers[i]}: {_PRODUCTS[products[i]]}. "
                f"{_PITCHES[pitches[i]]}",
            )
            for i in range(n)
        ]

    def slots(self, replies_shown: int, main_threads: int) -> int:
        """How many ad slots a page with `replies_shown` replies and `main_threads` top-level
        threads in main gets."""
        cfg = self.cfg
        return min(cfg.max_ads, replies_shown // cfg.replies_per_ad, main_threads, len(self.ads))

    def place(
        self, replies_shown: int, main_threads: int, viewer_id: int, focal_id: int
    ) -> list[PlacedAd]:
        """The ads of one page, in page order, each after a distinct main thread (1-based
        count of threads above it)."""
        count = self.slots(replies_shown, main_threads)
        if count == 0:
            return []
        rng = np.random.default_rng([self.cfg.ad_seed, int(viewer_id), int(focal_id)])
        chosen = rng.choice(len(self.ads), size=count, replace=False)
        # Evenly spread: after thread ceil(i * T / (count + 1)), i = 1..count; distinct and >= 1
        # because count <= T.
        after = -(-(np.arange(1, count + 1) * main_threads) // (count + 1))
        return [PlacedAd(self.ads[int(i)], int(a)) for i, a in zip(chosen, after, strict=True)]
