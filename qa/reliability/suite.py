"""`make reliability`: the whole suite against a freshly started local stack, with a report.

Smoke-profile models, a throwaway PostgreSQL cluster as the store, the template's routes through
the local gateway. Phases: bounded load, faults injected while a second load runs, vote
stuffing, hostile input, schema-driven fuzzing, then static security checks. The figures and
every expectation are printed and written to RELIABILITY.md; the exit status is non-zero if any
expectation fails.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from local.devstack.stack import LocalStack
from local.emulate.sagemaker import RestartPolicy
from local.paths import BUILD_DIR, DEFAULT_MODELS_ROOT, REPO_ROOT
from qa.reliability import faults, hostile, security, stuffing
from qa.reliability.fuzz import fuzz_api
from qa.reliability.load import LoadPlan, LoadResult, RouteFigures, run_load
from qa.reliability.outcome import Expectation, expect
from qa.reliability.records import VoteAudit, audit_votes, partial_generations

REPORT = REPO_ROOT / "RELIABILITY.md"
FUNCTION_LOG = BUILD_DIR / "reliability" / "functions.log"
WEIGHTS = {"A": 1.0, "B": 1.0}
STACK_PARAMETERS = {
    "HostingMode": "realtime",
    "VariantAWeight": WEIGHTS["A"],
    "VariantBWeight": WEIGHTS["B"],
    # The load measures the stack, not the stage throttle (tests/integration/api checks 429s).
    "ApiThrottlingRateLimit": 100_000,
    "ApiThrottlingBurstLimit": 100_000,
    # Nor the site's web ACL: every client here is 127.0.0.1, and the load (2,000 generations
    # and their votes by default) would pass its per-address limit (tests/integration/api
    # checks its 429s too).
    "EnableWaf": "false",
}
# A killed worker stays down long enough for the outage to be observed, then restarts.
RESTART = RestartPolicy(initial_backoff_s=5.0, max_backoff_s=5.0)


@dataclass
class SuiteRun:
    expectations: list[Expectation] = field(default_factory=list)
    load: LoadResult | None = None
    fault_load: LoadResult | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    vote_audits: dict[str, VoteAudit] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(expectation.held for expectation in self.expectations)


@contextmanager
def timed(run: SuiteRun, phase: str, console: Console) -> Iterator[None]:
    console.rule(f"[bold]{phase}")
    started = time.perf_counter()
    yield
    run.phase_seconds[phase] = time.perf_counter() - started


def load_expectations(
    run: SuiteRun, label: str, result: LoadResult, database_url: str
) -> list[Expectation]:
    audit = run.vote_audits[label] = audit_votes(database_url, result.acknowledged)
    return [
        expect(
            "load",
            f"{label}: every answer has an expected status",
            not result.unexpected,
            f"generate {result.generate.status_summary()}; feedback "
            f"{result.feedback.status_summary()}"
            + (f"; first unexpected: {result.unexpected[0][:80]}" if result.unexpected else ""),
        ),
        expect(
            "load",
            f"{label}: votes acknowledged = votes stored",
            audit.all_accounted_for,
            f"{audit.acknowledged} acknowledged, {audit.stored} stored, "
            f"{len(audit.missing)} missing",
        ),
    ]


def run_with_progress(
    console: Console,
    description: str,
    total: int,
    work: Callable[[Callable[[int], None]], LoadResult],
) -> LoadResult:
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(description, total=total)
        lock = threading.Lock()

        def advance(count: int) -> None:
            with lock:
                progress.advance(task, count)

        return work(advance)


def faults_under_load(
    stack: LocalStack, server: faults.DatabaseServer, plan: LoadPlan, console: Console
) -> tuple[list[Expectation], LoadResult]:
    """Inject each fault in turn while `plan` runs in the background; stop it after the last."""
    stop = threading.Event()
    background: list[LoadResult] = []
    runner = threading.Thread(
        target=lambda: background.append(run_load(stack.url, plan, stop=stop)), daemon=True
    )
    runner.start()
    expectations: list[Expectation] = []
    try:
        steps: Sequence[tuple[str, Callable[[], list[Expectation]]]] = (
            ("generator variant A killed", lambda: faults.generator_variant_outage(stack, WEIGHTS)),
            ("classifier killed", lambda: faults.classifier_outage(stack)),
            (
                "PostgreSQL stopped and restarted",
                lambda: faults.database_outage(stack, server),
            ),
            ("slow endpoint", lambda: faults.slow_endpoint(stack)),
        )
        for name, step in steps:
            with console.status(f"fault: {name}"):
                found = step()
            for expectation in found:
                mark = "[green]✔" if expectation.held else "[red]✘"
                console.print(f"{mark} {expectation.name}[/] ({expectation.evidence})")
            expectations.extend(found)
    finally:
        stop.set()
        runner.join(timeout=300)
    return expectations, background[0] if background else LoadResult()


def run_suite(
    console: Console, generations: int, clients: int, fault_requests: int, fuzz_examples: int
) -> SuiteRun:
    from tests.fixtures.postgres import throwaway_postgres
    from training.artifacts import ensure_artifacts

    run = SuiteRun()
    with timed(run, "setup", console):
        ensure_artifacts("smoke", root=DEFAULT_MODELS_ROOT, console=console)
    with throwaway_postgres() as server:
        database_url = server.url(server.create_database())
        stack = LocalStack(
            "smoke",
            database_url=database_url,
            parameter_overrides=STACK_PARAMETERS,
            emulator_options={"restart": RESTART, "seed": 20261126},
        )
        with console.status("starting the local stack (emulator workers, gateway, store)"):
            stack.start()
        try:
            with timed(run, "load", console):
                plan = LoadPlan(requests=generations, clients=clients)
                run.load = run_with_progress(
                    console,
                    f"{generations} generations + votes, {clients} clients",
                    generations,
                    lambda advance: run_load(stack.url, plan, on_progress=advance),
                )
                run.expectations += load_expectations(run, "load", run.load, database_url)
            with timed(run, "faults", console):
                fault_plan = LoadPlan(
                    requests=fault_requests,
                    clients=8,
                    variant=None,
                    label="faults",
                    allowed_statuses=frozenset({200, 503}),
                )
                found, run.fault_load = faults_under_load(stack, server, fault_plan, console)
                run.expectations += found
                run.expectations += load_expectations(
                    run, "load during faults", run.fault_load, database_url
                )
            with timed(run, "vote stuffing", console):
                run.expectations += stuffing.vote_stuffing(stack.url, database_url)
            with timed(run, "hostile input", console):
                run.expectations += hostile.hostile_requests(stack.url, database_url)
                run.expectations.append(hostile.injection_round_trip(stack.url, database_url))
            with timed(run, "fuzzing", console):
                run.expectations += fuzz_api(stack.url, database_url, fuzz_examples)
            all_votes = run.load.acknowledged + run.fault_load.acknowledged
            final = audit_votes(database_url, all_votes)
            run.expectations.append(
                expect(
                    "load",
                    "after every phase: all acknowledged votes still stored, no partial record",
                    final.all_accounted_for and partial_generations(database_url) == 0,
                    f"{final.stored}/{final.acknowledged} votes, "
                    f"{partial_generations(database_url)} partial generations",
                )
            )
        finally:
            stack.stop()
    with timed(run, "security", console):
        run.expectations += security.bandit_expectations(security.bandit_findings())
        run.expectations.append(security.checkov_expectation(security.checkov_report()))
        run.expectations.append(security.wildcard_expectation(security.wildcard_grants()))
    return run


def figures_rows(run: SuiteRun) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for label, result in (("load", run.load), ("load during faults", run.fault_load)):
        if result is None:
            continue
        for route, figures in (
            ("POST /api/generate", result.generate),
            ("POST /api/feedback", result.feedback),
        ):
            rows.append(_route_row(label, route, figures, result.wall_s))
        audit = run.vote_audits.get(label)
        if audit is not None:
            stored = f"acknowledged {audit.acknowledged}, stored {audit.stored}"
            rows.append((label, "votes (2xx vs in the database)", stored, "", "", "", "", ""))
    return rows


def _route_row(label: str, route: str, figures: RouteFigures, wall_s: float) -> tuple[str, ...]:
    return (
        label,
        route,
        str(figures.requests),
        figures.status_summary(),
        f"{figures.percentile(50):.0f}",
        f"{figures.percentile(95):.0f}",
        f"{figures.percentile(99):.0f}",
        f"{figures.requests / wall_s:.1f}" if wall_s else "",
    )


FIGURE_COLUMNS = ("phase", "route", "requests", "statuses", "p50 ms", "p95 ms", "p99 ms", "req/s")
EXPECTATION_COLUMNS = ("area", "expectation", "result", "evidence")


def expectation_rows(run: SuiteRun) -> list[tuple[str, ...]]:
    return [(e.area, e.name, "pass" if e.held else "FAIL", e.evidence) for e in run.expectations]


def print_report(console: Console, run: SuiteRun) -> None:
    for title, columns, rows in (
        ("Figures", FIGURE_COLUMNS, figures_rows(run)),
        ("Expectations", EXPECTATION_COLUMNS, expectation_rows(run)),
    ):
        table = Table(title=title, show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            style = "red" if "FAIL" in row else None
            table.add_row(*row, style=style)
        console.print(table)


def markdown_report(run: SuiteRun, command: str, wall_s: float) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
        return [
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
            *("| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows),
        ]

    failed = sum(not e.held for e in run.expectations)
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in run.phase_seconds.items())
    lines = [
        "# Reliability",
        "",
        "Written by `make reliability` (`qa/reliability/`); see the sections below the tables "
        "for what each phase does. Latencies are through the local gateway on this machine "
        "(smoke-profile models, PostgreSQL store), so they describe the local runtime, not AWS.",
        "",
        f"- run: `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} with {_cpus()} CPU cores",
        f"- wall time: {wall_s / 60:.1f} min ({phases})",
        f"- expectations: {len(run.expectations) - failed} passed, {failed} failed",
        "",
        "## Figures",
        "",
        *table(FIGURE_COLUMNS, figures_rows(run)),
        "",
        "## Expectations",
        "",
        *table(EXPECTATION_COLUMNS, expectation_rows(run)),
        "",
    ]
    return "\n".join(lines) + "\n" + _about()


def _cpus() -> int:
    return os.cpu_count() or 0


def _about() -> str:
    about = Path(__file__).with_name("ABOUT.md")
    return about.read_text(encoding="utf-8") if about.is_file() else ""


def main(
    generations: int = typer.Option(
        2000, help="Generations (each followed by a vote) in the load phase."
    ),
    clients: int = typer.Option(16, help="Concurrent clients of the load phase."),
    fault_requests: int = typer.Option(
        5000, help="Upper bound of the background load; it stops after the last fault."
    ),
    fuzz_examples: int = typer.Option(40, help="Schemathesis examples per operation and mode."),
    report: str = typer.Option(str(REPORT), help="Where to write the Markdown report."),
) -> None:
    """Run the reliability suite against a freshly started local stack."""
    # The in-process functions print a log line and EMF metrics per request: the metrics go to a
    # file, logs below ERROR are dropped, and the console (bound to the terminal before the
    # redirect) shows progress and the report.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    console = Console(file=sys.stdout)
    FUNCTION_LOG.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with FUNCTION_LOG.open("w", encoding="utf-8") as log, redirect_stdout(log):
        run = run_suite(console, generations, clients, fault_requests, fuzz_examples)
    wall_s = time.perf_counter() - started
    console.print(f"function metrics (EMF): {FUNCTION_LOG}")
    print_report(console, run)
    command = (
        "python -m qa.reliability"
        f" --generations {generations} --clients {clients}"
        f" --fault-requests {fault_requests} --fuzz-examples {fuzz_examples}"
    )
    Path(report).write_text(markdown_report(run, command, wall_s), encoding="utf-8")
    console.print(f"wall time {wall_s / 60:.1f} min; report written to {report}")
    if not run.passed:
        raise typer.Exit(1)
