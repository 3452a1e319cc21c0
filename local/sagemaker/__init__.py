"""The local SageMaker Runtime: an emulator of `InvokeEndpoint` with one worker per variant.

`Emulator` is the entry point (see `local.sagemaker.emulator`); endpoints and variants come
from the SAM templates (`local.sagemaker.endpoints`).
"""

from local.sagemaker.batching import BatchingConfig
from local.sagemaker.emulator import Emulator, VariantStats
from local.sagemaker.endpoints import EndpointSpec, VariantSpec
from local.sagemaker.supervisor import RestartPolicy, WorkerStartError, WorkerState

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
