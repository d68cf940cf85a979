"""One report of both papers: every claim beside ours, with intervals that separate (``twin-service report``).

``plan`` holds the budgets and the parts of a plan, and ``planner`` lists what a budget needs (recordings, models
with their commands, conditions, the arms of every figure); ``pipeline`` makes or reuses it and stores each result
as soon as it is done (``store``), keeping what it found and did in ``state``; ``results`` turns the stored sums
into per-episode KPI matrices; ``stats`` computes intervals and paired tests; ``verdicts`` says how a comparison
becomes a verdict and ``claims`` lists and judges each claim of the two papers; ``predictor`` scores Table II's
predictors per block. ``render`` writes the CSV files and, through ``plots``, ``sections``, ``markdown`` and
``html_page``, the plots, ``README.md`` and ``index.html``.
"""
