"""Candidate generation for the home feed: the in-memory `world_index`, the five `sources` and the
generator that runs them with their quotas, the `filters` between them and the ranker, and the
embedding `retrieval` source's retriever."""
