"""The local SageMaker Runtime: an emulator of `InvokeEndpoint` with one worker per variant.

`Emulator` is the entry point (see `local.emulate.sagemaker.emulator`); endpoints and variants come
from the SAM templates (`local.emulate.sagemaker.endpoints`).
"""

from local.emulate.sagemaker.batching import BatchingConfig
from local.emulate.sagemaker.emulator import Emulator, VariantStats
from local.emulate.sagemaker.endpoints import EndpointSpec, VariantSpec
from local.emulate.sagemaker.supervisor import RestartPolicy, WorkerStartError, WorkerState

__all__ = [
    "BatchingConfig",
    "Emulator",
    "EndpointSpec",
    "RestartPolicy",
    "VariantSpec",
    "VariantStats",
    "WorkerStartError",
    "WorkerState",
]
