"""The stages of the /conversation page (DESIGN section 6), each a plain function or small class
over numpy arrays, unit-tested without Ray or HTTP; `serving.engine.conversation` runs them in
order:

sources (recent replies, top replies, ancestor repair) -> degradation (how many to fetch; the
heuristic order when the ranker fails) -> scoring (a :class:`~.scoring.ReplyScorer`) -> tree and
linearization (thread scores bottom up, branches shown or collapsed) -> product order -> health
sections -> ad slots -> the page (nested answer and the rows logged as served).
"""
