"""Data preparation, training, evaluation and packaging of the Pressroom models."""
