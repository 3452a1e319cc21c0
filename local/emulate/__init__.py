"""AWS emulated on one machine: the API Gateway + Lambda gateway and the SageMaker Runtime
emulator."""
