"""What a ranker reads, defined once and shared by the Feast repo, training and serving: the
feature catalog (`catalog`: every view's fields, types, descriptions and model flags), the dense
inputs and the request-time transforms (`spec`), and the hashed sparse id fields (`sparse`).
Imports nothing heavier than numpy and pandas: serving reads it on every request."""
