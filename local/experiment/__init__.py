"""The A/B experiment from the outside: `pressroom report`, `sample-size`, `simulate`,
`simulate-retrain`, `round` (whose state is `local.rounds`) and `export-ground-truth`. The top
floor below `local.cli`: it drives the local stack and the AWS operations."""
