"""Benchmark `GET /api/stats` on SQLite and PostgreSQL: 1,000,000 votes over 500,000 generations.

Loads the same synthetic data into a SQLite file and a throwaway PostgreSQL (like the tests):
raw rows in bulk (executemany, COPY), then the hourly rollups by `rollup.rebuild`, the
backfills the 0002 and 0004 migrations run. Then times `FeedbackStore.stats` (the whole
computation behind the route: the rollup read, the exact-percentile read, the category rollup
read, then the Beta quantiles, P(best) / expected-loss integrals and chi-square test in Python,
and the verdict again for each of six categories), all time and since 7 days ago, against
a baseline that loads the window's rows and aggregates them in Python; the baseline's counts
and percentiles must equal the store's exactly. Prints a table and writes it to BENCHMARKS.md
between this benchmark's markers. Goal: p50 < 100 ms on both databases.

    .venv/bin/python -m benchmarks.stats [--generations 500000] [--votes 1000000] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sqlite3
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
import sqlalchemy as sa
from pressroom_common.experiment.statistics import percentile
from pressroom_common.feedback.service import stats_report
from pressroom_common.feedback.store import FeedbackStore, open_store
from pressroom_common.feedback.store.rollup import rebuild
from pressroom_common.feedback.store.schema import generations, votes
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks import results
from tests.fixtures.postgres import SUPERUSER, throwaway_postgres

GOAL_MS = 100.0
# A database server keeps its working set in its own buffers (Aurora gives them most of its
# memory); PostgreSQL's 128 MB default would not hold this data set's tables and indexes.
SERVER_SETTINGS = {"shared_buffers": "1GB"}
WEIGHTS = {"A": 1.0, "B": 1.0}
NOW = datetime(2026, 6, 30, tzinfo=UTC)
WEEK_AGO = NOW - timedelta(days=7)
DATABASES = ("SQLite", "PostgreSQL")
GENERATION_COLUMNS = (
    "id, created_at, user_hash, prompt, text, variant, model_name, model_version, strategy,"
    " parameters, latency_model_ms, latency_total_ms, error_code, category_label"
)
# The classifier's five labels, and None (it abstained) for about a sixth of the headlines:
# the verdict by category judges six categories.
CATEGORIES = ("business", "entertainment", "politics", "sport", "tech", None)
VOTE_COLUMNS = (
    "generation_id, user_hash, vote, created_at, updated_at, variant, generation_created_at"
)
# Positions of the timestamps in those rows (SQLite stores them as naive UTC text).
GENERATION_TIMES, VOTE_TIMES = (1,), (3, 4, 6)
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format

console = Console()
Row = TypeVar("Row")


@dataclass(frozen=True)
class Synthetic:
    """Generations over 30 days (A liked more than B and slower, 2% errors, six categories) and
    their votes; the same rows, in the same order, for every database."""

    generation_count: int
    vote_count: int

    def _variants_and_times(self) -> tuple[list[str], list[datetime]]:
        rng = random.Random(6)  # noqa: S311 - synthetic data, not cryptography
        variants = ["A" if rng.random() < 0.5 else "B" for _ in range(self.generation_count)]
        created = [
            NOW - timedelta(seconds=rng.uniform(0, 30 * 86_400))
            for _ in range(self.generation_count)
        ]
        return variants, created

    def generation_rows(self) -> Iterator[tuple[Any, ...]]:
        rng = random.Random(7)  # noqa: S311
        categories = random.Random(9)  # noqa: S311 - its own stream: the rest stays as it was
        parameters = json.dumps({"temperature": 0.8, "max_new_tokens": 24})
        for index, (variant, created) in enumerate(zip(*self._variants_and_times(), strict=True)):
            failed = rng.random() < 0.02
            category = None if failed else categories.choice(CATEGORIES)
            latency = rng.lognormvariate(math.log(120 if variant == "A" else 60), 0.4)
            yield (
                f"g{index:08d}",
                created,
                f"{rng.randrange(50_000):064x}",
                "Markets rally as",
                "" if failed else "Markets rally as rates hold",
                variant,
                "headline-base" if variant == "A" else "headline-lite",
                "v1",
                "fixed",
                parameters,
                latency * 0.8,
                latency,
                "model_error" if failed else None,
                category,
            )

    def vote_rows(self) -> Iterator[tuple[Any, ...]]:
        rng = random.Random(8)  # noqa: S311
        written = 0
        for index, (variant, created) in enumerate(zip(*self._variants_and_times(), strict=True)):
            # Spread the votes evenly: floor or ceil of the average per generation.
            due = round((index + 1) * self.vote_count / self.generation_count) - written
            up_rate = 0.62 if variant == "A" else 0.55
            for voter in range(due):
                voted = created + timedelta(seconds=rng.uniform(1, 3_600))
                vote = "up" if rng.random() < up_rate else "down"
                yield (f"g{index:08d}", f"{voter:064x}", vote, voted, voted, variant, created)
            written += due


def load_sqlite(path: Path, data: Synthetic, progress: Progress) -> None:
    """executemany into the migrated file, in one transaction per table."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous = OFF")  # a throwaway file
    for table, columns, rows, times, total in (
        ("generations", GENERATION_COLUMNS, data.generation_rows(), GENERATION_TIMES,
         data.generation_count),
        ("votes", VOTE_COLUMNS, data.vote_rows(), VOTE_TIMES, data.vote_count),
    ):  # fmt: skip
        task = progress.add_task(f"SQLite: insert {table}", total=total)
        placeholders = ", ".join("?" * len(columns.split(",")))
        with connection:
            connection.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608
                _with_progress(_naive_text(rows, times), progress, task),
            )
    connection.close()


def load_postgres(dsn: str, data: Synthetic, progress: Progress) -> None:
    """COPY into the migrated database, in one transaction."""
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        for table, columns, rows, total in (
            ("generations", GENERATION_COLUMNS, data.generation_rows(), data.generation_count),
            ("votes", VOTE_COLUMNS, data.vote_rows(), data.vote_count),
        ):
            task = progress.add_task(f"PostgreSQL: COPY {table}", total=total)
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in _with_progress(rows, progress, task):
                    copy.write_row(row)


def _naive_text(rows: Iterator[tuple[Any, ...]], times: tuple[int, ...]) -> Iterator[list[Any]]:
    for row in rows:
        values = list(row)
        for position in times:
            values[position] = values[position].astimezone(UTC).strftime(SQLITE_TIME)
        yield values


def _with_progress(rows: Iterator[Row], progress: Progress, task: Any) -> Iterator[Row]:
    for count, row in enumerate(rows, 1):
        yield row
        if count % 10_000 == 0:
            progress.update(task, completed=count)
    progress.update(task, completed=progress.tasks[task].total)


def rebuild_rollup(name: str, store: FeedbackStore, progress: Progress) -> None:
    task = progress.add_task(f"{name}: rollup.rebuild (the migration's backfill)", total=1)
    with store.engine.begin() as connection:
        rebuild(connection)
    progress.update(task, completed=1)


Exact = dict[str, tuple[int, int, int, int, float | None, float | None]]
"""Per variant: requests, errors, up, down, latency p50, p95."""


def python_baseline(store: FeedbackStore, since: datetime | None) -> Exact:
    """The window's rows loaded and aggregated in Python: what the rollup saves, and the
    exact answer the store must match."""
    window = generations.c.created_at >= since if since is not None else sa.true()
    vote_window = votes.c.generation_created_at >= since if since is not None else sa.true()
    requests: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: dict[str, list[float]] = defaultdict(list)
    with store.engine.connect() as connection:
        for variant, latency, error_code in connection.execute(
            sa.select(
                generations.c.variant, generations.c.latency_total_ms, generations.c.error_code
            ).where(window)
        ):
            requests[variant] += 1
            if error_code is None:
                latencies[variant].append(latency)
            else:
                errors[variant] += 1
        counts: Counter[tuple[str, str]] = Counter(
            (variant, vote)
            for variant, vote in connection.execute(
                sa.select(votes.c.variant, votes.c.vote).where(vote_window)
            )
        )
    return {
        variant: (
            requests[variant],
            errors[variant],
            counts[variant, "up"],
            counts[variant, "down"],
            percentile(latencies[variant], 0.5),
            percentile(latencies[variant], 0.95),
        )
        for variant in requests
    }


def store_answer(store: FeedbackStore, since: datetime | None) -> Exact:
    return {
        item.variant: (
            item.requests,
            item.errors,
            item.up,
            item.down,
            item.latency_ms.p50,
            item.latency_ms.p95,
        )
        for item in stats_report(store, since=since, weights=WEIGHTS).variants
    }


def time_ms(function: Callable[[], object], runs: int) -> list[float]:
    function()  # warm: plan cache, connection pool, page cache
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: Literal["stats", "routing", "baseline"]
    since: datetime | None = None

    def run(self, store: FeedbackStore) -> object:
        if self.kind == "stats":
            return stats_report(store, since=self.since, weights=WEIGHTS)
        if self.kind == "routing":
            return store.variant_counts()
        return python_baseline(store, self.since)


SCENARIOS = (
    Scenario("stats(), all time", "stats"),
    Scenario("stats(since=7 days ago)", "stats", WEEK_AGO),
    Scenario("variant_counts() (routing)", "routing"),
    Scenario("baseline: the rows into Python, all time", "baseline"),
    Scenario("baseline: the rows into Python, since=7 days ago", "baseline", WEEK_AGO),
)


@dataclass
class Measured:
    scenario: Scenario
    runs: int
    timings: dict[str, tuple[float, float]]  # database → (p50, p95) ms
    exact: dict[str, bool]  # database → the store's answer equals the baseline's (stats only)

    def cells(self) -> list[str]:
        checked = self.scenario.kind == "stats"
        goal = all(p50 < GOAL_MS for p50, _ in self.timings.values())
        return [
            self.scenario.name,
            str(self.runs),
            *(f"{value:.1f}" for database in DATABASES for value in self.timings[database]),
            ("yes" if all(self.exact.values()) else "NO") if checked else "",
            ("yes" if goal else "NO") if checked else "",
        ]


def measure(stores: dict[str, FeedbackStore], runs: int, baseline_runs: int) -> list[Measured]:
    rows = []
    for scenario in SCENARIOS:
        row = Measured(scenario, baseline_runs if scenario.kind == "baseline" else runs, {}, {})
        for database, store in stores.items():
            console.print(f"{database}: timing {scenario.name} ({row.runs} runs)")
            timings = time_ms(partial(scenario.run, store), row.runs)
            row.timings[database] = (percentile(timings, 0.5), percentile(timings, 0.95))
            if scenario.kind == "stats":
                answer = store_answer(store, scenario.since)
                row.exact[database] = answer == python_baseline(store, scenario.since)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=500_000)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    arguments = parser.parse_args()
    data = Synthetic(arguments.generations, arguments.votes)

    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-stats-")))
        server = stack.enter_context(throwaway_postgres(SERVER_SETTINGS))
        database = server.create_database()
        sqlite_path = directory / "feedback.sqlite"
        stores = {
            "SQLite": open_store(f"sqlite:///{sqlite_path}", migrate=True),
            "PostgreSQL": open_store(server.url(database), migrate=True),
        }
        for store in stores.values():
            stack.callback(store.engine.dispose)
        dsn = f"host=127.0.0.1 port={server.port} user={SUPERUSER} dbname={database}"
        started = time.perf_counter()
        with Progress(console=console) as progress:
            load_sqlite(sqlite_path, data, progress)
            load_postgres(dsn, data, progress)
            for name, store in stores.items():
                rebuild_rollup(name, store, progress)
        with stores["SQLite"].engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
        load_s = time.perf_counter() - started
        rows = measure(stores, arguments.runs, arguments.baseline_runs)
        load_average = os.getloadavg()[0]  # the last minute: the end of the timings
        report = stats_report(stores["PostgreSQL"], since=None, weights=WEIGHTS)

    title = (
        f"/api/stats: {arguments.votes:,} votes over {arguments.generations:,} generations, "
        f"SQLite and PostgreSQL (goal: p50 < {GOAL_MS:.0f} ms on both)"
    )
    table = Table(title=title)
    headers = [
        "scenario",
        "runs",
        *(f"{database} {stat} ms" for database in DATABASES for stat in ("p50", "p95")),
        "exact",
        "goal met",
    ]
    for header in headers:
        table.add_column(header)
    markdown = [f"| {' | '.join(headers)} |", "|---|" + "---:|" * 5 + "---|---|"]
    for row in rows:
        cells = row.cells()
        table.add_row(*cells)
        markdown.append(f"| {' | '.join(cells)} |")
    console.print(table)
    console.print(
        f"load (bulk insert + rollup rebuild + ANALYZE, both databases): {load_s:.1f} s; "
        f"machine load average {load_average:.1f}; P(best) = "
        f"{report.verdict.probability_best}; SRM p = {report.verdict.sample_ratio_mismatch_p_value}"
    )
    if not arguments.no_write:
        write_section(title, markdown, load_s, load_average)


def write_section(title: str, table: list[str], load_s: float, load_average: float) -> None:
    body = "\n".join(
        [
            "## Feedback statistics (`make bench-stats`)",
            "",
            f"{title}. Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, "
            f"{platform.python_implementation()} {platform.python_version()}, SQLite "
            f"{sqlite3.sqlite_version} (a file), PostgreSQL from the machine's packages with "
            "shared_buffers = 1GB, one client.",
            "Each timing is the whole `FeedbackStore.stats` call: one read of the hourly rollup "
            "(full hours from the rollup, the partial hour since `since` from raw rows), one "
            "indexed read of the exact latencies at the p50/p95 ranks, one read of the category "
            "rollup, then the credible intervals, P(best)/expected loss and the chi-square SRM "
            "test in Python, and the verdict (`judge`) for each of the six categories "
            "(`by_category`: five labels and the uncategorised). Counts "
            "and percentiles are exact: `exact` says the store's answer equals the baseline's "
            "(every row of the window loaded, percentiles by "
            "`pressroom_common.experiment.statistics.percentile`) to the last bit. "
            f"Loading both databases (bulk insert, `rollup.rebuild`, ANALYZE) took {load_s:.0f} "
            f"s. The machine's 1-minute load average was {load_average:.1f} on "
            f"{os.cpu_count()} cores during the timings (other work shares the machine; timings "
            "scale with it).",
            "",
            *table,
            "",
            "Reproduce: `make bench-stats` (or `.venv/bin/python -m benchmarks.stats`).",
        ]
    )
    console.print(f"wrote {results.write_section('stats', body)}")


if __name__ == "__main__":
    main()
