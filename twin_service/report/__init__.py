"""One report of both papers: every claim beside ours, with intervals that separate (``twin-service report``).

``plan`` lists what a budget needs; ``pipeline`` makes or reuses it (recordings, models, evaluation runs) and
stores each result as soon as it is done (``store``); ``results`` turns the stored sums into per-episode KPI
matrices; ``stats`` computes intervals and paired tests; ``claims`` judges each claim of the two papers; and
``render`` writes ``index.html``, ``README.md``, the CSV files and the plots.
"""
