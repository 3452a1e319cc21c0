"""The reliability suite (`make reliability`): load, faults, hostile input and static security
checks against a freshly started local stack, each with the outcome it expects.

The pieces are plain functions over a running stack so that `tests/reliability/` runs the same
checks, smaller, inside `make test`; `python -m qa.reliability` runs them all and writes the
figures to RELIABILITY.md.
"""
