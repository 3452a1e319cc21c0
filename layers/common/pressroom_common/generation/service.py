"""The generate flow: route → generator (with one fallback) → classifier → record → respond.

Everything here is plain Python over injected collaborators, so the Lambda handler is one line
and tests drive the same code against the local emulator.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from pressroom_common.experiment.routing import Assignment, Router
from pressroom_common.experiment.settings import Strategy
from pressroom_common.generation.contracts import (
    Category,
    ClassifierAnswer,
    GenerateRequest,
    GenerateResponse,
    GenerationParameters,
    LatencyMs,
    ModelRef,
)
from pressroom_common.generation.settings import HostingMode
from pressroom_common.platform.errors import DependencyFailed, DomainError
from pressroom_common.platform.observability import logger, record_metric, record_variant_metric
from pressroom_common.platform.readers import ANONYMOUS_READER, ReaderKeys
from pressroom_common.platform.sagemaker import Deadline, SageMakerRuntime
from pressroom_common.records import GenerationRecord, storable


class GenerationRecorder(Protocol):
    """The part of the feedback store the generate flow writes to."""

    def record_generation(self, record: GenerationRecord) -> None: ...


@dataclass(frozen=True)
class _ModelCall:
    """One generation's request, the same for the assigned variant and its fallback."""

    payload: dict[str, Any]
    deadline: Deadline
    inference_id: str


@dataclass(frozen=True)
class Generated:
    variant: str
    text: str
    latency_ms: float
    fell_back_from: str | None


class Generator:
    """Calls the assigned variant and, when it fails, the other one once.

    An explicit `variant` override never falls back: the caller asked for that model.
    """

    def __init__(self, runtime: SageMakerRuntime, router: Router, hosting_mode: HostingMode):
        self._runtime = runtime
        self._router = router
        self._hosting_mode = hosting_mode

    def generate(
        self,
        prompt: str,
        parameters: GenerationParameters,
        assignment: Assignment,
        deadline: Deadline,
        *,
        inference_id: str,
    ) -> Generated:
        """`inference_id` (the generation id) goes with every call, the fallback's too."""
        payload = generator_payload(prompt, parameters)
        call = _ModelCall(payload, deadline, inference_id)
        try:
            return self._invoke(assignment.variant, call, fell_back_from=None)
        except DomainError as error:
            fallback = (
                None
                if assignment.strategy == Strategy.OVERRIDE
                else self._router.fallback_for(assignment.variant)
            )
            if fallback is None or deadline.expired():
                raise
            logger.warning(
                "variant failed; falling back",
                extra={"variant": assignment.variant, "fallback": fallback, "error": error.code},
            )
            record_variant_metric("Fallbacks", 1, MetricUnit.Count, variant=assignment.variant)
            return self._invoke(fallback, call, fell_back_from=assignment.variant)

    def _invoke(self, variant: str, call: _ModelCall, fell_back_from: str | None) -> Generated:
        config = self._router.variant(variant)
        # realtime: one endpoint, TargetVariant pins the variant; serverless: one endpoint each.
        target = variant if self._hosting_mode == "realtime" else None
        record_variant_metric("Invocations", 1, MetricUnit.Count, variant=variant)
        started = time.perf_counter()
        try:
            invocation = self._runtime.invoke_json(
                config.endpoint_name,
                call.payload,
                deadline=call.deadline,
                target_variant=target,
                inference_id=call.inference_id,
            )
            text = generated_text(invocation.body, config.endpoint_name)
        except DomainError:
            record_variant_metric("Errors", 1, MetricUnit.Count, variant=variant)
            self._router.record_outcome(variant, ok=False, latency_ms=elapsed_ms(started))
            raise
        record_variant_metric(
            "ModelLatency", invocation.latency_ms, MetricUnit.Milliseconds, variant=variant
        )
        self._router.record_outcome(variant, ok=True, latency_ms=invocation.latency_ms)
        # SageMaker names the variant that answered; trust it over the one we asked for, so
        # the record always joins to the model that wrote the text.
        answered = invocation.invoked_variant
        if answered is None or not self._router.has_variant(answered):
            answered = variant
        return Generated(answered, text, invocation.latency_ms, fell_back_from)


def generator_payload(prompt: str, parameters: GenerationParameters) -> dict[str, Any]:
    """The Hugging Face text-generation request that `models/serving/inference.py` reads."""
    sampling = parameters.model_dump(exclude_none=True)
    return {
        "inputs": prompt,
        "parameters": {**sampling, "do_sample": True, "return_full_text": False},
    }


def generated_text(body: Any, endpoint: str) -> str:
    if (
        isinstance(body, list)
        and body
        and isinstance(body[0], dict)
        and isinstance(body[0].get("generated_text"), str)
    ):
        # Byte-level tokenizers can emit U+0000, which the store cannot keep.
        return storable(str(body[0]["generated_text"]))
    raise DependencyFailed(f"Endpoint {endpoint} answered without generated_text")


@dataclass(frozen=True)
class Classification:
    """The classifier's verdict on one headline, as the API and the store carry it."""

    category: Category | None  # None when it abstained or did not answer
    confidence: float | None  # its calibrated top probability; None when it did not answer
    latency_ms: float | None  # None when no classifier is configured


class Classifier:
    """Tags a headline with a news category; a failure or a slow answer only loses the tag.

    The endpoint abstains (answers no label) when its calibrated confidence is below the
    threshold packaged with the model: the headline then has no category, but the confidence
    is kept."""

    def __init__(self, runtime: SageMakerRuntime, endpoint_name: str | None, timeout_s: float):
        self._runtime = runtime
        self._endpoint_name = endpoint_name
        self._timeout_s = timeout_s

    def classify(self, text: str, deadline: Deadline, *, inference_id: str) -> Classification:
        """The category (None on abstention or failure), the confidence (None on failure) and
        the time spent; `inference_id` is the generation id, as for the generator."""
        if self._endpoint_name is None:
            return Classification(None, None, None)
        started = time.perf_counter()
        own_deadline = Deadline(min(self._timeout_s, deadline.remaining()))
        try:
            invocation = self._runtime.invoke_json(
                self._endpoint_name,
                {"inputs": text},
                deadline=own_deadline,
                inference_id=inference_id,
            )
            answer = ClassifierAnswer.model_validate(invocation.body[0])
        except (DomainError, LookupError, TypeError, ValueError) as error:
            # pydantic's ValidationError is a ValueError: a malformed answer is a failure too.
            logger.warning(
                "classifier failed; answering without a category",
                extra={"endpoint": self._endpoint_name, "error": str(error)},
            )
            record_metric("ClassifierFailures", 1, MetricUnit.Count)
            return Classification(None, None, elapsed_ms(started))
        category = (
            None if answer.label is None else Category(label=answer.label, score=answer.score)
        )
        return Classification(category, answer.score, elapsed_ms(started))


def headline(prompt: str, text: str) -> str:
    """The full headline a reader sees, and the one place prompt and continuation are joined.

    The generator answers the continuation as the Hugging Face text-generation pipeline does:
    with its leading space when the model began a new word ("Football club" + " signs"), none
    when it went on with the prompt's last word ("Stock" + "s climb"). So the join adds nothing.
    """
    return prompt + text


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


class GenerationService:
    def __init__(
        self,
        router: Router,
        generator: Generator,
        classifier: Classifier,
        recorder: GenerationRecorder,
        reader_keys: ReaderKeys,
        *,
        deadline_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._router = router
        self._generator = generator
        self._classifier = classifier
        self._recorder = recorder
        self._reader_keys = reader_keys
        self._deadline_s = deadline_s
        self._clock = clock

    def generate(self, request: GenerateRequest, reader_id: str | None) -> GenerateResponse:
        started = time.perf_counter()
        deadline = Deadline(self._deadline_s)
        user_hash = self._reader_keys.reader_hash(reader_id)
        # Anonymous callers have no stable identity to stick to, so the strategy sees None.
        anonymous = user_hash == ANONYMOUS_READER
        assignment = self._router.assign(None if anonymous else user_hash, request.variant)
        parameters = request.parameters()
        record = GenerationRecord(
            id=str(uuid.uuid4()),
            created_at=self._clock(),
            user_hash=user_hash,
            prompt=request.prompt,
            text="",
            variant=assignment.variant,
            model_name=self._router.variant(assignment.variant).model_name,
            model_version=self._router.variant(assignment.variant).model_version,
            strategy=assignment.strategy,
            parameters=parameters.model_dump(),
            latency_model_ms=0,
            latency_total_ms=0,
        )
        try:
            generated = self._generator.generate(
                request.prompt, parameters, assignment, deadline, inference_id=record.id
            )
        except DomainError as error:
            self._record_failure(record, error, elapsed_ms(started))
            raise
        full_headline = headline(request.prompt, generated.text)
        classification = self._classifier.classify(full_headline, deadline, inference_id=record.id)
        category, classifier_ms = classification.category, classification.latency_ms
        served = self._router.variant(generated.variant)
        record = record.model_copy(
            update={
                "text": generated.text,
                "variant": generated.variant,
                "model_name": served.model_name,
                "model_version": served.model_version,
                "strategy": str(
                    Strategy.FALLBACK if generated.fell_back_from else assignment.strategy
                ),
                # An abstention is stored as no label with the confidence it fell short with.
                "category_label": category.label if category else None,
                "category_score": classification.confidence,
                "latency_model_ms": round(generated.latency_ms, 3),
                "latency_classifier_ms": classifier_ms,
                "latency_total_ms": elapsed_ms(started),
            }
        )
        self._recorder.record_generation(record)
        return GenerateResponse(
            generation_id=record.id,
            prompt=record.prompt,
            text=record.text,
            headline=full_headline,
            variant=record.variant,
            model=ModelRef(name=record.model_name, version=record.model_version),
            strategy=record.strategy,
            category=category,
            category_confidence=classification.confidence,
            latency_ms=LatencyMs(
                model=record.latency_model_ms,
                classifier=classifier_ms,
                total=record.latency_total_ms,
            ),
            created_at=record.created_at,
            vote_token=self._reader_keys.vote_token(record.id, user_hash),
        )

    def _record_failure(
        self, record: GenerationRecord, error: DomainError, total_ms: float
    ) -> None:
        """Keep failed requests in the error rate; a store outage must not mask the real error."""
        failed = record.model_copy(update={"error_code": error.code, "latency_total_ms": total_ms})
        try:
            self._recorder.record_generation(failed)
        except DomainError as store_error:
            logger.warning(
                "could not record a failed generation", extra={"error": store_error.code}
            )
