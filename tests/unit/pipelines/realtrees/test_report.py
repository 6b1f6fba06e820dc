"""The section shares at the configured thresholds, and the table the benchmark prints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import ConversationConfig, SectionThresholds
from pipelines.realtrees.evaluate import MODELS, STRATA, section_shares
from pipelines.realtrees.report import table


def test_section_shares_follow_the_service_s_toxicity_thresholds() -> None:
    cfg = ConversationConfig(
        low_quality=SectionThresholds(toxicity=0.5), abusive=SectionThresholds(toxicity=0.8)
    )
    candidates = pd.DataFrame({"toxicity": [0.1, 0.49, 0.5, 0.79, 0.8, 1.0, np.nan, np.nan]})
    shares = section_shares(candidates, cfg)
    assert shares["abusive"] == pytest.approx(2 / 8)
    assert shares["low_quality"] == pytest.approx(2 / 8)
    assert shares["main"] == pytest.approx(4 / 8)  # the two unscored count as main
    assert shares["unscored"] == pytest.approx(2 / 8)


def test_the_table_has_a_row_per_stratum_and_model_with_its_interval() -> None:
    row = {"ndcg10": 0.75, "ci": [0.7, 0.8], "recall10": 0.6, "trees": 12}
    result = {stratum: dict.fromkeys(MODELS, row) for stratum in STRATA}
    lines = table(result).splitlines()
    assert len(lines) == 2 + len(STRATA) * len(MODELS)
    assert "| ge20 | 12 | ranker | 0.750 | [0.700, 0.800] | 0.600 |" in lines
