"""The live service's freshness: what reaches a replica after it loaded the lake.

- :mod:`serving.live.sync`: every replica polls the event log for tweets posted to the service and
  engagements recorded by any replica, and grows its world index and tweet index with them;
- :mod:`serving.live.counts`: a tweet's engagement counts recomputed at the clock's now (lake
  history plus live events) and pushed to the online store, off the request path.
"""
