"""Generating a headline: the API contract, the generator and classifier calls, health."""
