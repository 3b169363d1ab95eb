"""Trajectory prediction: one sample type, three data sources, a scalable transformer, AV2 metrics."""
