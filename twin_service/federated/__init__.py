"""AdFL (paper B, Sec. V): pure aggregation maths, client selection, the semi-synchronous server, a Flower adapter."""
