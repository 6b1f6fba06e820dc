"""Release: the promotion gates (`gates`), the MLflow registry (`registry`) and the two release
steps that use them (`promotion`: register, promote)."""
