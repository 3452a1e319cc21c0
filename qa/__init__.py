"""Quality checks that go beyond the unit tests: the reliability harness."""
