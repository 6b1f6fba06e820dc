"""Real reply trees from the delab-trees package: read (source), re-keyed (rekey), repaired
(repair), imported as conversations (importer), and the leakage-free offline protocol that ranks
their top-level replies (protocol, history, splits, metrics, baselines, ranker, evaluate, report).
"""
