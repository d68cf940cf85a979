"""AdFL (paper B, Sec. V): pure aggregation maths, client selection and the semi-synchronous server.

Below :mod:`twin_service.learn` (the trainers use it) and imports nothing of it; the Flower orchestration that drives
a trainer is :mod:`twin_service.flower`, above both.
"""
