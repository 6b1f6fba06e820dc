"""Product policy as plain functions: experiment arms (`experiments`), blended scores and reply
trees (`rules`), the feed's `heuristics`, and signed page cursors (`cursor`)."""
