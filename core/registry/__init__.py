"""Stage 3, registry: what the registry shows of models and versions, and model cards."""
