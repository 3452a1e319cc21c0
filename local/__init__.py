"""The no-Docker local runtime (SageMaker Runtime emulator, API gateway, site) and the `pressroom` CLI."""
