"""Stage 4, promotion: the gates, champion/challenger moves, approvals, training a version and gating
it at registration.
"""
