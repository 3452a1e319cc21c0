"""The A/B experiment from the outside: `pressroom report`, `sample-size` and `simulate`."""
