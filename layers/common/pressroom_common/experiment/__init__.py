"""The A/B experiment: variants and routing, adaptive strategies, statistics, verdict."""
