"""The HTTP app and error mapping, settings, logging and metrics, the SageMaker client."""
