"""Stage 2, training: the spec, the model catalog, the pipeline, evaluation, reference statistics,
search, runs, the workflow.
"""
