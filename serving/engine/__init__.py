"""The request paths of serving, free of Ray and HTTP: `feed` (the home feed, and the engine that
owns every path of a replica), `conversation` (reply trees), `ports` (what the paths need from
outside: features, retrieval, rankers) and `errors` (each mapped to one HTTP status)."""
