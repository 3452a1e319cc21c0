"""`pressroom report`, `pressroom sample-size` and `pressroom simulate`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pressroom_common.experiment.settings import ThompsonParameters
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from local.paths import BUILD_DIR, DEFAULT_DATABASE_URL, ROOT_TEMPLATE

if TYPE_CHECKING:
    from local.experiment.loop import LoopResult
    from local.experiment.simulate import HeadlineTaste, SimulationResult

commands = typer.Typer()

SQLITE_PREFIX = "sqlite:///"
WARMUP_VOTES = ThompsonParameters().warmup_votes


def parse_assignments(values: list[str], option: str) -> dict[str, float]:
    """`["A=0.6", "B=0.5"]` -> {"A": 0.6, "B": 0.5}; a bad entry names the option."""
    parsed: dict[str, float] = {}
    for value in values:
        name, separator, number = value.partition("=")
        try:
            if not separator or not name.strip():
                raise ValueError
            parsed[name.strip()] = float(number)
        except ValueError:
            raise typer.BadParameter(
                f"expected VARIANT=NUMBER, got {value!r}", param_hint=option
            ) from None
    return parsed


def template_weights() -> dict[str, float]:
    """The default variant weights of the root template (what `pressroom up` runs with)."""
    from local.cfn import load_template

    parameters = load_template(ROOT_TEMPLATE)["Parameters"]
    return {
        variant: float(parameters[f"Variant{variant}Weight"]["Default"]) for variant in ("A", "B")
    }


@commands.command()
def report(
    database_url: Annotated[
        str, typer.Option(help="Feedback store: sqlite:///path or postgresql+psycopg://...")
    ] = DEFAULT_DATABASE_URL,
    weight: Annotated[
        list[str] | None,
        typer.Option(
            help="Configured weight VARIANT=W for the SRM check (repeat); default: the template's."
        ),
    ] = None,
    bucket_s: Annotated[int, typer.Option(min=1, help="Time bucket of the charts, seconds.")] = 60,
    out: Annotated[
        Path | None, typer.Option(help="Write PNG charts and report.html into this folder.")
    ] = None,
) -> None:
    """The experiment's state: per-variant table, sample-ratio check and verdict (and charts)."""
    from pressroom_common.feedback.store import open_store
    from pressroom_common.platform.errors import DomainError
    from sqlalchemy.engine import make_url

    from local.experiment.report import experiment_report, print_report

    console = Console()
    weights = parse_assignments(weight, "--weight") if weight else template_weights()
    sqlite_path = database_url.removeprefix(SQLITE_PREFIX)
    if database_url.startswith(SQLITE_PREFIX) and not Path(sqlite_path).is_file():
        # Opening it would create an empty file; say what to run instead.
        console.print(f"No feedback store at {sqlite_path}: run `pressroom up` first.")
        raise typer.Exit(1)
    try:
        store = open_store(database_url)
        experiment = experiment_report(store, weights, bucket_s=bucket_s)
    except DomainError as error:
        shown = make_url(database_url).render_as_string(hide_password=True)
        console.print(f"[red]Cannot read the feedback store at {shown}:[/] {error.message}")
        raise typer.Exit(1) from None
    if not experiment.stats.variants:
        console.print("No generations recorded yet: run `pressroom up` or `pressroom simulate`.")
        raise typer.Exit(0)
    print_report(experiment, console)
    if out is not None:
        from local.experiment.charts import write_report_files

        for path in write_report_files(experiment, out):
            console.print(f"wrote {path}")


@commands.command("sample-size")
def sample_size(
    baseline: Annotated[float, typer.Option(help="Up-rate of the current variant, e.g. 0.5.")],
    difference: Annotated[
        float, typer.Option(help="Smallest difference worth detecting, e.g. 0.05.")
    ],
    alpha: Annotated[float, typer.Option(help="False-positive rate (two-sided).")] = 0.05,
    power: Annotated[float, typer.Option(help="Chance of detecting a real difference.")] = 0.8,
) -> None:
    """Votes each variant needs to detect `difference` at the given power and alpha."""
    from local.experiment.report import sample_size_per_variant

    try:
        votes = sample_size_per_variant(baseline, difference, alpha=alpha, power=power)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    Console().print(
        f"{votes} votes per variant ({2 * votes} in all) detect an up-rate of "
        f"{baseline + difference:.3f} against {baseline:.3f} "
        f"with power {power:.0%} at alpha {alpha:g}."
    )


@commands.command()
def simulate(
    rate: Annotated[
        list[str] | None, typer.Option(help="True up-rate VARIANT=P of the readers (repeat).")
    ] = None,
    requests: Annotated[int, typer.Option(min=1, max=20_000, help="Synthetic readers.")] = 400,
    seed: Annotated[int, typer.Option(help="Seed of the readers' prompts and votes.")] = 7,
    url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of a running stack (its /api/stats counts what it held before); "
            "default: start a local one with a fresh store."
        ),
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="Routing of the local stack this starts: fixed or thompson.")
    ] = "thompson",
    warmup: Annotated[
        int, typer.Option(min=0, help="Thompson warm-up votes per variant (local stack).")
    ] = WARMUP_VOTES,
    profile: Annotated[
        str, typer.Option(help="Models of the local stack: smoke or full.")
    ] = "smoke",
    database_url: Annotated[
        str | None, typer.Option(help="Store of the local stack; default: a fresh temporary one.")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Read /api/stats every N.")] = 50,
) -> None:
    """Synthetic readers of known taste drive the real API: does routing find the better model?"""
    true_rates = parse_assignments(rate, "--rate") if rate else {"A": 0.6, "B": 0.5}
    if not all(0 <= value <= 1 for value in true_rates.values()):
        raise typer.BadParameter("every rate must be in [0, 1]", param_hint="--rate")
    if strategy not in ("fixed", "thompson"):
        raise typer.BadParameter("choose fixed or thompson", param_hint="--strategy")
    console = Console()
    if url is not None:
        _run_simulation(console, url, true_rates, requests, seed, checkpoint_every)
        return

    from local.devstack.stack import LocalStack
    from local.paths import DEFAULT_MODELS_ROOT
    from training.artifacts import ensure_artifacts

    ensure_artifacts(profile, root=DEFAULT_MODELS_ROOT, console=Console(stderr=True))
    # The in-process functions would print an EMF metric line per call over the results.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    with tempfile.TemporaryDirectory(prefix="pressroom-simulate-") as scratch:
        stack = LocalStack(
            profile,
            database_url=database_url or f"sqlite:///{Path(scratch) / 'simulation.db'}",
            parameter_overrides={"RoutingStrategy": strategy},
            # Seconds-long runs: re-read the counts every second instead of every few.
            function_environment={
                "THOMPSON_WARMUP_VOTES": str(warmup),
                "THOMPSON_REFRESH_S": "1",
            },
            site_dir=None,
        )
        with console.status("Starting the local stack"):
            stack.start()
        try:
            _run_simulation(console, stack.url, true_rates, requests, seed, checkpoint_every)
        finally:
            stack.stop()


def _run_simulation(
    console: Console,
    url: str,
    true_rates: dict[str, float],
    requests: int,
    seed: int,
    checkpoint_every: int,
) -> None:
    import httpx

    from local.experiment.simulate import SimulationError, rates_taste
    from local.experiment.simulate import simulate as run

    with (
        Progress(console=console, transient=True) as progress,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        task = progress.add_task("Synthetic readers", total=requests)
        try:
            result = run(
                client,
                rates_taste(true_rates),
                requests=requests,
                seed=seed,
                checkpoint_every=checkpoint_every,
                on_request=lambda: progress.advance(task),
            )
        except (SimulationError, httpx.HTTPError) as error:
            console.print(f"[red]Simulation stopped:[/] {error}")
            raise typer.Exit(1) from None
    table = Table(title=f"Better variant by truth: {result.better}", title_justify="left")
    for column in ("requests", f"share to {result.better} (window)", f"P({result.better} best)"):
        table.add_column(column, justify="right")
    for checkpoint in result.checkpoints:
        table.add_row(
            str(checkpoint.requests),
            f"{checkpoint.better_share_in_window:.0%}",
            f"{checkpoint.probability_best.get(result.better, 0.0):.3f}",
        )
    console.print(table)
    if not result.served:
        console.print(f"[red]No request succeeded[/] ({result.failed_requests} failed).")
        raise typer.Exit(1)
    confident_at = result.first_confident_at(0.95)
    found = result.final_probability_best >= 0.95
    console.print(
        f"{'[green]Found' if found else '[yellow]Not yet found'}[/] the better variant "
        f"{result.better}: P(best) {result.final_probability_best:.3f} after {requests} requests"
        + (f", first ≥ 0.95 at request {confident_at}" if confident_at else "")
        + f"; {result.better_share(100):.0%} of the last 100 served went to it"
        + (f"; {result.failed_requests} requests failed" if result.failed_requests else "")
        + "."
    )


@commands.command("simulate-retrain")
def simulate_retrain(
    profile: Annotated[str, typer.Option(help="Models: smoke (a quick check) or full.")] = "full",
    readers: Annotated[
        int, typer.Option(min=1, max=20_000, help="Readers of round one (each votes once).")
    ] = 400,
    round_readers: Annotated[
        int, typer.Option(min=1, max=20_000, help="Readers of round two, champion vs challenger.")
    ] = 600,
    share: Annotated[
        float, typer.Option(min=0.01, max=0.5, help="The challenger's canary share in round two.")
    ] = 0.1,
    taste_name: Annotated[
        str,
        typer.Option(
            "--taste", help="The readers' hidden taste: short (headlines) or numbers (in them)."
        ),
    ] = "short",
    max_words: Annotated[
        int, typer.Option(min=1, help="--taste short: headlines of at most this many words.")
    ] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the readers' prompts and votes.")] = 7,
    out: Annotated[
        Path,
        typer.Option(help="Where loop.json, loop.png, the run's feedback.db and its log go."),
    ] = BUILD_DIR / "loop",
) -> None:
    """Readers with a hidden taste vote; `retrain` learns from them; does the challenger win?"""
    from local.experiment.loop import write_loop_files
    from local.paths import DEFAULT_MODELS_ROOT
    from training.artifacts import ensure_artifacts

    taste = _chosen_taste(taste_name, max_words)
    console = Console()
    ensure_artifacts(profile, root=DEFAULT_MODELS_ROOT, console=Console(stderr=True))
    result = _run_loop(
        console,
        profile,
        out,
        readers=readers,
        round_readers=round_readers,
        share=share,
        seed=seed,
        taste=taste,
    )
    _print_taste_table(console, result)
    if result.second_round is None:
        write_loop_files(result, out)
        console.print(f"[red]Challenger {result.challenger.version}:[/] {result.decision}")
        raise typer.Exit(1)
    _print_challenger_verdict(console, result, result.second_round, round_readers)
    for path in write_loop_files(result, out):
        console.print(f"wrote {path}")


def _chosen_taste(taste_name: str, max_words: int) -> HeadlineTaste:
    """The readers' taste named by `--taste` (`--max-words` sets the short one's limit)."""
    from local.experiment.simulate import TASTES, PrefersShortHeadlines

    if taste_name not in TASTES:
        raise typer.BadParameter(f"choose one of {', '.join(TASTES)}", param_hint="--taste")
    if taste_name == PrefersShortHeadlines.name:
        return PrefersShortHeadlines(max_words=max_words)
    return TASTES[taste_name]()


def _run_loop(
    console: Console,
    profile: str,
    out: Path,
    *,
    readers: int,
    round_readers: int,
    share: float,
    seed: int,
    taste: HeadlineTaste,
) -> LoopResult:
    """Both rounds and the retraining between them, with a progress bar over the readers; a
    refusal on the way is printed and exits 1."""
    from local.experiment.loop import close_the_loop
    from local.experiment.simulate import SimulationError
    from local.paths import DEFAULT_MODELS_ROOT
    from local.registry import DEFAULT_REGISTRY_ROOT
    from local.rounds.state import RoundRefused
    from training.feedback import RetrainRefused

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Synthetic readers", total=readers + round_readers)
        try:
            out.mkdir(parents=True, exist_ok=True)
            return close_the_loop(
                profile,
                out / "feedback.db",
                readers=readers,
                round_readers=round_readers,
                share=share,
                seed=seed,
                taste=taste,
                models_root=DEFAULT_MODELS_ROOT,
                registry_root=DEFAULT_REGISTRY_ROOT,
                console=console,
                on_request=lambda: progress.advance(task),
            )
        except (SimulationError, RetrainRefused, RoundRefused) as error:
            console.print(f"[red]Simulation stopped:[/] {error}")
            raise typer.Exit(1) from None


def _print_taste_table(console: Console, result: LoopResult) -> None:
    """Per round and variant: which model answered, and how its headlines met the taste."""
    table = Table(title=f"Readers like {result.taste.description}", title_justify="left")
    columns = ("round", "variant", "model", "answers", "true up-rate", "liked", "words", "distinct")
    for column in columns:
        table.add_column(column, justify="right")
    for round_name in ("first", "second"):
        for variant, figures in result.taste_figures(round_name).items():
            table.add_row(
                round_name,
                variant,
                figures.model,
                str(figures.answers),
                f"{figures.true_up_rate:.3f}",
                f"{figures.liked_share:.0%}",
                f"{figures.mean_words:.1f}",
                f"{figures.distinct_share:.0%}",
            )
    console.print(table)


def _print_challenger_verdict(
    console: Console, result: LoopResult, round_two: SimulationResult, round_readers: int
) -> None:
    """Whether round two found the challenger best (P(best) >= 0.95), and after how many."""
    confident_at = result.challenger_confident_at()
    final = round_two.checkpoints[-1].probability_best.get("B", 0.0)
    console.print(
        f"Challenger {result.challenger.version} ({result.challenger.status}): "
        + (
            f"[green]P(best) >= 0.95 after {confident_at} readers[/] of round two"
            if confident_at
            else f"[yellow]P(best) {final:.3f}[/] after {round_readers} readers of round two"
        )
    )
