"""One router per resource: health, ticks (and KPIs), twins, decisions, metrics."""
