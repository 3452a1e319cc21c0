"""Model definitions (one file per model) and the serving code shipped in every model.tar.gz."""
