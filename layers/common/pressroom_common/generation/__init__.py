"""Generating a headline: the generate function's settings, the API contract, the generator and
classifier calls, health."""
