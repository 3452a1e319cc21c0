"""Keeps one worker process per variant alive, as SageMaker keeps a variant's container alive.

A supervisor thread starts the worker, learns its port through the start-up handshake (see
`local.emulate.sagemaker.worker`), waits for `GET /ping`, and then waits on the process. When the
worker dies the variant is unavailable (the emulator answers SageMaker's error for that) until a new
worker has loaded; restarts back off exponentially while a worker keeps dying young.

The worker's output goes to its log file; with `on_output`, each line also goes to that
callback (with the worker's pid), which is how the emulator copies it into the local log file.
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from local.emulate.sagemaker.batching import BatchingConfig

_PING_INTERVAL_S = 0.05
_STABLE_AFTER_S = 30.0
"""A worker that stayed up this long resets the restart back-off."""


class WorkerState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    STOPPED = "stopped"


class WorkerStartError(RuntimeError):
    """A worker exited before it was ready on its first start (message holds its log tail)."""


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 10.0


class WorkerSupervisor:
    """Runs, watches and restarts the worker process of one variant."""

    def __init__(
        self,
        label: str,
        model_dir: Path,
        log_path: Path,
        batching: BatchingConfig,
        restart: RestartPolicy,
        threads: int,
        on_output: Callable[[int, str], None] | None = None,
    ) -> None:
        self.label = label
        self.on_output = on_output
        self.threads = threads
        self.model_dir = model_dir
        self.log_path = log_path
        self.batching = batching
        self.restart = restart
        self.restarts = 0
        self._state = WorkerState.STOPPED
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._first_start_failed: str | None = None
        self._thread = threading.Thread(target=self._supervise, name=f"worker-{label}", daemon=True)

    # ---- what the emulator reads

    @property
    def state(self) -> WorkerState:
        return self._state

    @property
    def port(self) -> int | None:
        """The worker's port while it is ready, else None."""
        return self._port if self._state is WorkerState.READY else None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    # ---- control

    def start(self) -> None:
        self._set_state(WorkerState.STARTING)
        self._thread.start()

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the worker answers /ping; raise if it cannot start."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._state is not WorkerState.READY:
                if self._first_start_failed is not None:
                    raise WorkerStartError(self._first_start_failed)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"worker {self.label} not ready after {timeout_s:.0f}s")
                self._changed.wait(remaining)

    def kill(self) -> int:
        """SIGKILL the worker (fault injection); returns once the supervisor has seen it die."""
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"worker {self.label} is not running")
        process.send_signal(signal.SIGKILL)
        with self._changed:
            self._changed.wait_for(lambda: self._state is not WorkerState.READY, timeout=10)
        return process.pid

    def stop(self) -> None:
        self._stopping.set()
        self._terminate()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._terminate()  # a worker the thread started while we were stopping the last one
        self._set_state(WorkerState.STOPPED)

    def _terminate(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # ---- the supervising thread

    def _supervise(self) -> None:
        backoff = self.restart.initial_backoff_s
        while not self._stopping.is_set():
            ready_at = self._run_once()
            if self._stopping.is_set():
                return
            if ready_at is None and self.restarts == 0:
                with self._changed:
                    self._first_start_failed = (
                        f"worker {self.label} exited while loading {self.model_dir}:\n"
                        + _tail(self.log_path)
                    )
                    self._changed.notify_all()
                return
            lived = time.monotonic() - ready_at if ready_at is not None else 0.0
            backoff = self.restart.initial_backoff_s if lived > _STABLE_AFTER_S else backoff
            self._set_state(WorkerState.RESTARTING)
            self.restarts += 1
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.restart.max_backoff_s)

    def _run_once(self) -> float | None:
        """Start a worker and wait for it to exit; returns when it became ready, or None."""
        read_fd, write_fd = os.pipe()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            process = self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed args
                [
                    sys.executable,
                    "-m",
                    "local.emulate.sagemaker.worker",
                    f"--model-dir={self.model_dir}",
                    f"--port-fd={write_fd}",
                    f"--max-batch-size={self.batching.max_batch_size}",
                    f"--batch-window-ms={self.batching.window_ms}",
                ],
                pass_fds=(write_fd,),
                stdout=log if self.on_output is None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Never written: the worker exits when it reads EOF, i.e. when we die.
                stdin=subprocess.PIPE,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "TOKENIZERS_PARALLELISM": "false",
                    # Workers share the CPU: more threads than cores only adds contention.
                    "OMP_NUM_THREADS": str(self.threads),
                    "MKL_NUM_THREADS": str(self.threads),
                },
            )
        os.close(write_fd)
        copier = None
        if self.on_output is not None and process.stdout is not None:
            copier = threading.Thread(
                target=self._copy_output,
                args=(process.pid, process.stdout),
                name=f"worker-output-{self.label}",
                daemon=True,
            )
            copier.start()
        with os.fdopen(read_fd) as announce:
            line = announce.readline().strip()
        ready_at = None
        if line.isdigit() and self._wait_for_ping(int(line)):
            ready_at = time.monotonic()
            with self._changed:
                self._port = int(line)
                self._state = WorkerState.READY
                self._changed.notify_all()
        process.wait()
        if copier is not None:
            copier.join(timeout=5)  # the worker's last lines reach its log before the tail is read
        if process.stdin is not None:
            process.stdin.close()
        with self._changed:
            self._port = None
            if self._state is WorkerState.READY:
                self._state = WorkerState.RESTARTING
            self._changed.notify_all()
        return ready_at

    def _copy_output(self, pid: int, output: IO[bytes]) -> None:
        """Append each line of the worker's output to its log file and pass it on."""
        assert self.on_output is not None
        with output, self.log_path.open("ab") as log:
            for raw in output:
                log.write(raw)
                log.flush()
                self.on_output(pid, raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    def _wait_for_ping(self, port: int) -> bool:
        url = f"http://127.0.0.1:{port}/ping"
        with httpx.Client(timeout=2.0) as client:
            while self._process is not None and self._process.poll() is None:
                try:
                    if client.get(url).status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                time.sleep(_PING_INTERVAL_S)
        return False

    def _set_state(self, state: WorkerState) -> None:
        with self._changed:
            self._state = state
            self._changed.notify_all()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
