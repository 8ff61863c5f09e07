"""The domain: a floor shared by all, then one package per stage of the loop (docs/architecture.md)."""
