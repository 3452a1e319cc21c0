"""The no-Docker local runtime (SageMaker emulator, API gateway, site) and the `pressroom` CLI."""
