"""Alerts: channels, notify (after a commit), delivery with retries."""
