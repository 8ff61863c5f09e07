"""Stage 6, monitoring: the drift engine, the Evidently report, stored drift checks, live performance."""
