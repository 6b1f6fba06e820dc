"""Out-of-network retrieval: the ANN index of tweet embeddings (`index`) and its offline
evaluation against untuned and lexical baselines (`evaluate`)."""
