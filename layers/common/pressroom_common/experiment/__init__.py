"""The A/B experiment: its vocabulary and settings, routing, adaptive strategies, statistics, the
report and its verdict."""
