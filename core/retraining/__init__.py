"""Stage 7, retraining: pure decisions, triggers, the retrain workflow, automatic rollback, per-model
schedules, the watch round.
"""
