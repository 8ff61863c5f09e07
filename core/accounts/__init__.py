"""Accounts (the lower floor): users, roles and tokens, dashboard sessions, the login throttle, SSO."""
