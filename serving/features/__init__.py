"""Online features for serving: the ranker's feature service read from Feast's online store.

:class:`~serving.features.hydrate.FastOnlineFeatures` serves the values of the Feast SDK's
`get_online_features` (:class:`~serving.features.sdk.OnlineFeatures`, the reference path) as
columns, several times faster: the SDK turns every value into protobuf messages and back, per
request, in Python. It reads Feast's **private storage format** directly (the sqlite online
store's tables, entity keys and serialized values); a Feast upgrade may change that format, and
`tests/integration/test_online_features_parity.py` fails when served values stop matching the
SDK's. `benchmarks/online_features.py` measures both paths.

Modules, in the order a request uses them:

- `keys`: Feast's v3 entity keys, encoded and decoded byte for byte.
- `values`: serialized feast `Value` messages decoded by hand (scalars, float lists), and lists of
  values typed as pandas types them.
- `plan`: the feature service resolved once against the registry (views, join keys, on-demand
  views and their inputs).
- `readers`: the latest rows of one view for many keys, from the sqlite tables (one prepared,
  fixed-size ``IN`` query per view and chunk; a whole-table scan for the replica) or through the
  Feast provider for any other online store (redis).
- `columns`: one view's cached rows held column-wise, so a request gathers each feature with one
  numpy take.
- `cache`: the per-key cache in front of a reader: each row served for at most a TTL (longer for
  batch-only views); keys absent from the store are cached as absent too.
- `replica`: whole views held in memory and synced on a thread with rows written since.
- `hydrate`: `FastOnlineFeatures`, candidates -> feature columns (online, cached-only for a slow
  store, or the model's defaults).
- `on_demand`: request-time views run on the columns (`spec.ON_DEMAND_COLUMNS`, the functions
  Feast's pandas transformations wrap), outputs typed as Feast stores them, so they match the
  SDK's to the bit.
- `frames`: columns as the SDK's frame, and two frames compared by value.
- `sdk`: the SDK reader itself.

Column order: entity columns (tweet_id, author_id, viewer_id), then each view's features in the
order the service declares, then on-demand outputs. Feast orders features within a view by a Python
set (so by string hash, per process); consumers select columns by name.
"""
