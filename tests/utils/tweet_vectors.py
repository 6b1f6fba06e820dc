"""Five tweet embeddings and a query with a known nearest-neighbour order."""

from __future__ import annotations

import numpy as np


def unit(*vector: float) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    return array / np.linalg.norm(array)


# Tweets 10..14 by authors 1..5; angles chosen so that the order to QUERY is 11, 10, 12, 13, 14.
VECTORS = np.stack(
    [unit(1, 0.5, 0), unit(1, 0.1, 0), unit(0.5, 1, 0), unit(0, 1, 0.2), unit(-1, 0, 1)]
)
IDS = np.array([10, 11, 12, 13, 14])
AUTHORS = np.array([1, 2, 3, 4, 5])
QUERY = unit(1, 0, 0)
