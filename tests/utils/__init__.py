"""Factories and fakes shared by tests: a tiny world, a fake clock, fake features and rankers."""
