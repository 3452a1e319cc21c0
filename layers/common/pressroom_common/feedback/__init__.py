"""Votes and the store: the feedback function's settings, its contract and service, the store
of every generation and vote."""
