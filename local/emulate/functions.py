"""Load Lambda handlers in-process, each as its own module, with the function's environment.

Every load executes the handler file afresh under a unique module name, so one function can have
several independent "instances" (each with its own cold start, settings and clients) the way
Lambda runs one event at a time per execution environment.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from aws_lambda_powertools import Logger

Handler = Callable[[dict[str, Any], Any], Any]

_instance_numbers = itertools.count(1)
# Only its thread-local keys are used, which every Powertools Logger in the process shares.
_powertools_keys = Logger(service="pressroom-local")


class HandlerLoadError(RuntimeError):
    """A handler file is missing, does not import, or lacks its handler function."""


def load_handler(code_dir: Path, handler: str, environment: Mapping[str, str]) -> Handler:
    """Load the module of a `module.function` handler (see `load_module`); return the function."""
    module_path, _, function_name = handler.rpartition(".")
    module = load_module(code_dir, module_path, environment)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise HandlerLoadError(f"handler {handler!r}: {module.__file__} has no {function_name!r}")
    return function  # type: ignore[no-any-return]


def load_module(code_dir: Path, module_path: str, environment: Mapping[str, str]) -> ModuleType:
    """Execute `<code_dir>/<module_path>.py` as a new module with a unique name.

    The environment applies while the module executes (its cold start reads settings then);
    `code_dir` is on `sys.path` meanwhile so the module can import files next to it.
    """
    source = code_dir / (module_path.replace(".", "/") + ".py")
    if not source.is_file():
        raise HandlerLoadError(f"no handler file {source}")
    unique_name = f"pressroom_lambda_{code_dir.name}_{next(_instance_numbers)}".replace("-", "_")
    spec = importlib.util.spec_from_file_location(unique_name, source)
    if spec is None or spec.loader is None:
        raise HandlerLoadError(f"cannot load {source}")
    module = importlib.util.module_from_spec(spec)
    with patched_environ(environment), _on_sys_path(code_dir):
        sys.modules[unique_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[unique_name]
            raise HandlerLoadError(f"{source} failed to import: {error}") from error
    return module


@contextmanager
def patched_environ(environment: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of the block, then restore the previous values."""
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def function_service(environment: Mapping[str, str]) -> Iterator[None]:
    """While the block runs, Powertools log lines written on this thread name the function's
    `POWERTOOLS_SERVICE_NAME`. In Lambda each function has a process of its own, whose Logger
    reads the variable when the layer is imported; here the functions share one process and the
    layer's one Logger, so the name travels in Powertools' thread-local log keys instead."""
    service = environment.get("POWERTOOLS_SERVICE_NAME")
    if not service:
        yield
        return
    _powertools_keys.thread_safe_append_keys(service=service)
    try:
        yield
    finally:
        _powertools_keys.thread_safe_remove_keys(["service"])


@contextmanager
def _on_sys_path(directory: Path) -> Iterator[None]:
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        sys.path.remove(str(directory))
