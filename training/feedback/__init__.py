"""Learning from readers: the votes in the feedback store train the next challenger.

Not part of any model's build key (`training.pipeline.build_key` hashes `training/*.py` only):
nothing here shapes the models `build-all` trains.
"""

# The model line retraining starts from and whose new versions challenge it (on variant B,
# in place of headline-lite: apps/inference-api's ChallengerModel).
CHAMPION = "headline-base"


class RetrainRefused(Exception):
    """Retraining cannot go on; the message says why and what to do. Nothing was written."""
