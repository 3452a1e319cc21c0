"""Each packaged artifact serves unchanged through the Hugging Face inference toolkit.

The toolkit's `HuggingFaceHandlerService` is driven directly (no Java model server), with a
context carrying what the model server would pass: the model directory and request headers.
"""

import json
import sys
from typing import Any

import pytest
from mms.service import PredictionException
from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

from training.artifacts import Artifact


class _RequestProcessor:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class _Metrics:
    def add_time(self, name: str, value: float) -> None:
        pass


class _Context:
    """The slice of the model server's context that the handler service reads."""

    def __init__(self, model_dir: str, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": model_dir, "batch_size": 1, "gpu_id": 0}
        self.request_processor = [_RequestProcessor(headers)]
        self.metrics = _Metrics()
        self.response_content_types: dict[int, str] = {}

    def set_response_content_type(self, index: int, content_type: str) -> None:
        self.response_content_types[index] = content_type


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, smoke_artifacts: dict[str, Artifact]) -> Any:
    """name -> a function posting a JSON body through a freshly initialised handler service."""
    # Each artifact must load its own code/inference.py, not one imported for another artifact.
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))

    def start(name: str) -> Any:
        service = HuggingFaceHandlerService()
        model_dir = str(smoke_artifacts[name].directory)
        service.initialize(_Context(model_dir, {}))

        def post(body: object, content_type: str = "application/json") -> Any:
            context = _Context(
                model_dir, {"Content-Type": content_type, "Accept": "application/json"}
            )
            (response,) = service.handle([{"body": json.dumps(body).encode()}], context)
            assert context.response_content_types[0] == "application/json"
            return json.loads(response)

        return service, post

    return start


@pytest.mark.parametrize("name", ["headline-base", "headline-lite"])
def test_toolkit_serves_each_generator(
    serve: Any, smoke_artifacts: dict[str, Artifact], name: str
) -> None:
    service, post = serve(name)
    assert service.model.kind == "generator"
    assert sys.modules["inference"].__file__ == str(
        smoke_artifacts[name].directory / "code" / "inference.py"
    )
    answer = post(
        {"inputs": ["Government plans", "Stocks"], "parameters": {"max_new_tokens": 5, "seed": 3}}
    )
    assert [set(item) for item in answer] == [{"generated_text"}] * 2
    with pytest.raises(
        PredictionException, match=r"parameters\.top_p: must be a number in \(0, 1\]"
    ) as error:
        post({"inputs": "Stocks", "parameters": {"top_p": 7}})
    assert error.value.error_code == 400


def test_toolkit_serves_the_classifier(serve: Any) -> None:
    service, post = serve("news-classifier")
    assert service.model.runtime == "onnxruntime"
    answer = post({"inputs": "Chelsea win the league"})
    assert len(answer) == 1 and set(answer[0]) == {"label", "score"}
    with pytest.raises(
        PredictionException, match="content_type: 'text/csv' is not supported"
    ) as error:
        post({"inputs": "x"}, content_type="text/csv")
    assert error.value.error_code == 400
