"""Metric samples: the series model, compact storage and (later) the sampling rule and back ends."""
