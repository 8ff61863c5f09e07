"""Stage 5, serving: the model cache, input signatures, micro-batching, inference, the prediction log, traffic."""
