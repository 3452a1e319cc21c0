"""Benchmark `GET /api/stats` on PostgreSQL: 1,000,000 votes over 500,000 generations.

Starts a throwaway PostgreSQL (like the tests), bulk-loads it with COPY, then times
`FeedbackStore.stats` (the whole computation behind the route: one aggregate query plus the
Beta quantiles, P(best) / expected-loss integrals and chi-square test in Python) against a
baseline that
loads every row and aggregates in Python — what "aggregated in SQL" saves. Prints a table and
writes it to BENCHMARKS.md between this benchmark's markers. Goal: < 200 ms.

    .venv/bin/python -m benchmarks.stats [--generations 500000] [--votes 1000000] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import sqlalchemy as sa
from pressroom_common.experiment.statistics import percentile
from pressroom_common.feedback.store import FeedbackStore, open_store
from pressroom_common.feedback.store.schema import generations, votes
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks import results
from tests.fixtures.postgres import SUPERUSER, PostgresServer, throwaway_postgres

GOAL_MS = 200.0
# A database server keeps its working set in its own buffers (Aurora gives them most of its
# memory); PostgreSQL's 128 MB default would not hold this data set's tables and indexes.
SERVER_SETTINGS = {"shared_buffers": "1GB"}
WEIGHTS = {"A": 1.0, "B": 1.0}
NOW = datetime(2026, 6, 30, tzinfo=UTC)

console = Console()


def load(server: PostgresServer, database: str, generation_count: int, vote_count: int) -> None:
    """COPY synthetic generations (A liked more than B, 2% errors, 30 days) and their votes."""
    rng = random.Random(7)  # noqa: S311 - synthetic data, not cryptography
    parameters = json.dumps({"temperature": 0.8, "max_new_tokens": 24})
    variants = ["A" if rng.random() < 0.5 else "B" for _ in range(generation_count)]
    created = [
        NOW - timedelta(seconds=rng.uniform(0, 30 * 86_400)) for _ in range(generation_count)
    ]
    dsn = f"host=127.0.0.1 port={server.port} user={SUPERUSER} dbname={database}"
    with psycopg.connect(dsn) as connection, Progress(console=console) as progress:
        task = progress.add_task("COPY generations", total=generation_count)
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY generations (id, created_at, user_hash, prompt, text, variant, model_name,"
                " model_version, strategy, parameters, latency_model_ms, latency_total_ms,"
                " error_code) FROM STDIN"
            ) as copy:
                for index, variant in enumerate(variants):
                    failed = rng.random() < 0.02
                    latency = rng.lognormvariate(math.log(120 if variant == "A" else 60), 0.4)
                    copy.write_row(
                        (
                            f"g{index:08d}",
                            created[index],
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
                        )
                    )
                    if index % 10_000 == 0:
                        progress.update(task, completed=index)
            progress.update(task, completed=generation_count)
            vote_task = progress.add_task("COPY votes", total=vote_count)
            with cursor.copy(
                "COPY votes (generation_id, user_hash, vote, created_at, updated_at, variant,"
                " generation_created_at) FROM STDIN"
            ) as copy:
                written = 0
                for index, variant in enumerate(variants):
                    # Spread the votes evenly: floor or ceil of the average per generation.
                    due = round((index + 1) * vote_count / generation_count) - written
                    up_rate = 0.62 if variant == "A" else 0.55
                    for voter in range(due):
                        voted = created[index] + timedelta(seconds=rng.uniform(1, 3_600))
                        vote = "up" if rng.random() < up_rate else "down"
                        copy.write_row(
                            (
                                f"g{index:08d}",
                                f"{voter:064x}",
                                vote,
                                voted,
                                voted,
                                variant,
                                created[index],
                            )
                        )
                    written += due
                    if index % 10_000 == 0:
                        progress.update(vote_task, completed=written)
            progress.update(vote_task, completed=written)
        connection.commit()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def python_side_baseline(store: FeedbackStore) -> None:
    """The same aggregates computed in Python over every row: what SQL aggregation avoids."""
    latencies: dict[str, list[float]] = {}
    with store.engine.connect() as connection:
        variant_of = {}
        for generation_id, variant, latency, error_code in connection.execute(
            sa.select(
                generations.c.id,
                generations.c.variant,
                generations.c.latency_total_ms,
                generations.c.error_code,
            )
        ):
            variant_of[generation_id] = variant
            if error_code is None:
                latencies.setdefault(variant, []).append(latency)
        counts = Counter(
            (variant_of[generation_id], vote)
            for generation_id, vote in connection.execute(
                sa.select(votes.c.generation_id, votes.c.vote)
            )
        )
    for values in latencies.values():
        percentile(values, 0.5), percentile(values, 0.95)
    assert counts


def time_ms(function: Callable[[], object], runs: int) -> list[float]:
    function()  # warm: plan cache, connection pool, page cache
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=500_000)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    arguments = parser.parse_args()

    with throwaway_postgres(SERVER_SETTINGS) as server:
        database = server.create_database()
        store = open_store(server.url(database), migrate=True)
        started = time.perf_counter()
        load(server, database, arguments.generations, arguments.votes)
        load_s = time.perf_counter() - started
        week_ago = NOW - timedelta(days=7)
        scenarios: list[tuple[str, Callable[[], object], int]] = [
            ("stats(), all time", lambda: store.stats(None, WEIGHTS), arguments.runs),
            ("stats(since=7 days ago)", lambda: store.stats(week_ago, WEIGHTS), arguments.runs),
            ("variant_counts() (routing)", store.variant_counts, arguments.runs),
            (
                "baseline: load all rows, count in Python",
                lambda: python_side_baseline(store),
                arguments.baseline_runs,
            ),
        ]
        rows = []
        for name, function, runs in scenarios:
            console.print(f"timing {name} ({runs} runs)")
            timings = time_ms(function, runs)
            rows.append((name, runs, percentile(timings, 0.5), percentile(timings, 0.95)))
            console.print(f"  p50 {rows[-1][2]:.1f} ms, p95 {rows[-1][3]:.1f} ms")
        load_average = os.getloadavg()[0]  # the last minute: the end of the timings
        report = store.stats(None, WEIGHTS)
        store.engine.dispose()

    title = (
        f"/api/stats on PostgreSQL: {arguments.votes:,} votes over "
        f"{arguments.generations:,} generations (goal < {GOAL_MS:.0f} ms)"
    )
    table = Table(title=title)
    for column in ("scenario", "runs", "p50 ms", "p95 ms", "goal"):
        table.add_column(column)
    markdown = [
        "| scenario | runs | p50 ms | p95 ms | goal met |",
        "|---|---:|---:|---:|---|",
    ]
    for name, runs, p50, p95 in rows:
        goal = ("yes" if p95 < GOAL_MS else "NO") if name.startswith("stats(") else ""
        table.add_row(name, str(runs), f"{p50:.1f}", f"{p95:.1f}", goal)
        markdown.append(f"| {name} | {runs} | {p50:.1f} | {p95:.1f} | {goal} |")
    console.print(table)
    console.print(
        f"load (COPY + VACUUM ANALYZE): {load_s:.1f} s; machine load average "
        f"{load_average:.1f}; "
        f"P(best) = {report.verdict.probability_best}; SRM p = "
        f"{report.verdict.sample_ratio_mismatch_p_value}"
    )
    if not arguments.no_write:
        write_section(title, markdown, load_s, load_average)


def write_section(title: str, table: list[str], load_s: float, load_average: float) -> None:
    body = "\n".join(
        [
            "## Feedback statistics (`make bench-stats`)",
            "",
            f"{title}. Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, "
            f"{platform.python_implementation()} {platform.python_version()}, "
            "PostgreSQL from the machine's packages with shared_buffers = 1GB, one client.",
            "Each timing is the whole `FeedbackStore.stats` call: one SQL statement "
            "(counts, `percentile_cont` p50/p95, vote counts), then the credible intervals, "
            "P(best)/expected loss and the chi-square SRM test in Python. "
            f"Bulk load took {load_s:.0f} s. The machine's 1-minute load average was "
            f"{load_average:.1f} on {os.cpu_count()} cores during the timings (other work "
            "shares the machine; timings scale with it).",
            "",
            *table,
            "",
            "Reproduce: `make bench-stats` (or `.venv/bin/python -m benchmarks.stats`).",
        ]
    )
    console.print(f"wrote {results.write_section('stats', body)}")


if __name__ == "__main__":
    main()
