"""Workload prediction (paper A, section V): forecasts of every server's load for the migration mask.

* :mod:`.base` - the :class:`~.base.LoadForecaster` interface, the server-load history it reads, and the
  persistence forecast used when no trained predictor is loaded.
"""

from twin_service.predict.base import LoadForecaster, PersistenceForecaster, ServerLoadHistory

__all__ = ["LoadForecaster", "PersistenceForecaster", "ServerLoadHistory"]
