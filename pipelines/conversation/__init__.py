"""The conversation ranker's offline half: the conversation context of a reply, the conversation
training set, the blend weights tuned by grid search, evaluation and release."""
