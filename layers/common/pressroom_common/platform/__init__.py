"""The HTTP app and error mapping, the settings every function shares, reader identity, logging,
tracing and metrics, the SageMaker client."""
