"""The ``casework`` command line.

Heavy libraries (Prefect, MLflow, scikit-learn, torch) are imported inside the
commands that need them, so ``casework --help`` and ``casework list`` start fast.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from casework.errors import CaseworkError

__all__ = ["app", "main"]

logger = logging.getLogger(__name__)

#: The interpreter's thread switch interval while a flow runs (Python's is 0.005):
#: 0.3-0.5 s off a 10.6 s `casework run churn` on 2 cores (bench/overhead.py).
FLOW_SWITCH_INTERVAL_SECONDS = 0.001

#: Columns of output that goes to a file or a pipe rather than a terminal.
PIPED_WIDTH = 200

app = typer.Typer(
    name="casework",
    help="Take an ML use case from raw data to a versioned MLflow model, and back out as scores.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped into a file or another program, Rich would wrap at 80 columns: a run id and
# its tracking URI split over two lines, and tables cut names short.
console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Turn casework's errors into one line on stderr and exit code 1."""
    try:
        yield
    except CaseworkError as exc:
        errors.print("[bold red]error:[/] ", end="")
        errors.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _prepare(
    start_prefect: bool = False,
    check_tracking: bool = False,
    require_registry: bool = False,
) -> Any:
    """Set up the environment. With ``check_tracking``, check that the tracking store
    named in it can be used, and with ``require_registry`` that it exists already
    (models and promote work on versions that must be there); with ``start_prefect``,
    also a Prefect server, and launch Prefect's local API if none is named (see
    :func:`casework.runtime.start_local_api`)."""
    from casework.settings import configure_environment

    configure_environment()
    if not (start_prefect or check_tracking):
        return None
    from casework.runtime import (
        check_prefect_api,
        check_tracking_store,
        quiet_expected_errors,
        start_local_api,
    )
    from casework.settings import tracking_uri

    # Servers named in the environment answer before anything starts
    if start_prefect:
        check_prefect_api()
    check_tracking_store(tracking_uri(), must_exist=require_registry)
    if not start_prefect:
        return None
    # Launched before Prefect is imported: Prefect reads PREFECT_API_URL at import.
    local_api = start_local_api()
    quiet_expected_errors(local_api)
    return local_api


@app.command("list")
def list_usecases() -> None:
    """List the use cases casework can run."""
    from casework.usecases import available_usecases, load_spec

    with _reported():
        table = Table("use case", "target", "primary metric", "description", box=None)
        for name, path in available_usecases().items():
            try:
                spec = load_spec(path)
            except CaseworkError as exc:
                table.add_row(name, "-", "-", f"[red]invalid spec: {exc}[/]")
                continue
            table.add_row(
                name, spec.target.column, spec.metric.primary, spec.description
            )
        console.print(table)


RunnerOption = Annotated[
    str,
    typer.Option(
        help="Task runner the flow fans out with: threads, or dask (a local cluster "
        "on loopback, or the one at --dask-address)."
    ),
]
DaskAddressOption = Annotated[
    str | None,
    typer.Option(
        help="With --runner dask: the scheduler of an existing Dask cluster, "
        "e.g. tcp://10.0.0.5:8786."
    ),
]
DaskWorkersOption = Annotated[
    int | None,
    typer.Option(help="With --runner dask: worker processes of a local cluster [2]."),
]


@app.command()
def run(
    usecase: Annotated[
        str | None,
        typer.Argument(
            help="Use-case name, or path to a usecase.yaml; leave out with --all."
        ),
    ] = None,
    candidates: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated candidate models, instead of the spec's list."
        ),
    ] = None,
    register: Annotated[
        bool,
        typer.Option("--register/--no-register", help="Register the winner in MLflow."),
    ] = True,
    all_usecases: Annotated[
        bool,
        typer.Option(
            "--all", help="Train every use case casework can find, concurrently."
        ),
    ] = False,
    runner: RunnerOption = "threads",
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
) -> None:
    """Train a use case's candidates, evaluate them, and register the winner."""
    with _reported():
        if usecase is None and not all_usecases:
            raise CaseworkError(
                "casework run needs a use case: a name (see 'casework list'), the path "
                "to a usecase.yaml, or --all to train every use case"
            )
        if usecase is not None and all_usecases:
            raise CaseworkError("give one use case, or --all, not both")
        from casework.flows.runners import check_runner_options, make_task_runner

        # A bad name, spec, candidate or runner option fails before anything starts
        check_runner_options(runner, dask_address, dask_workers)
        names = None
        if candidates is not None:
            names = [c.strip() for c in candidates.split(",") if c.strip()]
            if not names:
                raise CaseworkError(
                    f"--candidates {candidates!r} names no candidate; give them "
                    "separated by commas, or leave the option out for the spec's list"
                )
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise CaseworkError(
                    f"--candidates {candidates!r} names {', '.join(twice)} more than "
                    "once; give each candidate once"
                )
        spec = None
        if usecase is not None:
            spec = _checked_usecase(usecase, names)
        local_api = _prepare(start_prefect=True)

        task_runner = make_task_runner(runner, dask_address, dask_workers)
        if all_usecases:
            _run_all(task_runner, local_api, names, register)
            return
        from casework.flows.train import import_libraries, train

        # Imported while the local API boots, not inside the flow
        import_libraries(names or spec.candidates)
        with _started(train, task_runner, local_api) as flow:
            summary = flow(usecase=usecase, candidates=names, register_winner=register)
        _print_train_summary(summary)


def _checked_usecase(usecase: str, names: list[str] | None) -> Any:
    """The use case's spec, once its candidates and their ``candidate_params``
    (names and values) are known to be good."""
    from casework.tasks.candidates import check_candidates
    from casework.usecases import load_usecase

    spec = load_usecase(usecase)
    check_candidates(names or spec.candidates, spec.name, spec.candidate_params)
    return spec


@contextlib.contextmanager
def _started(flow: Any, task_runner: Any, local_api: Any) -> Iterator[Any]:
    """``flow`` (with ``task_runner``, if given) once the Prefect API answers, with
    the tracking store opening beside it and the local API's settings while it runs."""
    from casework.tasks.track import open_store_early

    if task_runner is not None:
        flow = flow.with_options(task_runner=task_runner)
    if local_api is not None:
        local_api.wait_until_ready()
    opening = open_store_early()
    settings = local_api.flow_settings() if local_api else contextlib.nullcontext()
    with settings, _short_lock_switches():
        yield flow
    opening.join()  # long done after a real flow; a flow that never connected waits


@contextlib.contextmanager
def _short_lock_switches(
    seconds: float = FLOW_SWITCH_INTERVAL_SECONDS,
) -> Iterator[None]:
    """The interpreter lock handed between threads every ``seconds`` while a flow
    runs, instead of Python's 5 ms.

    Candidates fit in threads beside Prefect's and MLflow's. torch and NumPy let go
    of the lock for each small operation, and a thread that let go waits a whole
    switch interval to get it back while another computes in Python; the MLP's
    thousands of small steps paid that wait each time.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _run_all(
    task_runner: Any,
    local_api: Any,
    candidates: list[str] | None,
    register: bool,
) -> None:
    from casework.flows.train_all import train_all

    with _started(train_all, task_runner, local_api) as flow:
        outcomes = flow(candidates=candidates, register_winner=register)
    _print_all_summary(outcomes)
    failed = [outcome for outcome in outcomes if not outcome["ok"]]
    for outcome in failed:
        errors.print(
            f"[bold red]error:[/] {outcome['usecase']}: {outcome['error']}",
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(1)


@app.command()
def deploy(
    usecases: Annotated[
        list[str] | None,
        typer.Argument(
            help="Use-case names or paths to usecase.yaml files; default every use "
            "case casework can find."
        ),
    ] = None,
    write_prefect_yaml: Annotated[
        Path | None,
        typer.Option(
            "--write-prefect-yaml",
            help="Write the same deployments for a work pool into this prefect.yaml "
            "and exit, instead of serving them.",
        ),
    ] = None,
    work_pool: Annotated[
        str, typer.Option(help="Work pool of the prefect.yaml deployments.")
    ] = "casework",
    runner: RunnerOption = "threads",
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    limit: Annotated[
        int | None, typer.Option(help="The most flow runs at once; default no limit.")
    ] = None,
) -> None:
    """Serve train-<usecase> and score-<usecase> deployments on the specs' cron
    schedules, for scheduled runs and runs started from the Prefect UI."""
    with _reported():
        from casework.flows.deploy import load_targets, plan_deployments
        from casework.flows.runners import make_task_runner

        plans = plan_deployments(load_targets(usecases))
        if write_prefect_yaml is not None:
            _write_prefect_yaml(plans, write_prefect_yaml, work_pool)
            return
        task_runner = make_task_runner(runner, dask_address, dask_workers)
        _prepare()
        from casework.runtime import (
            check_tracking_store,
            quiet_expected_errors,
            require_prefect_server,
        )
        from casework.settings import tracking_uri

        # Both servers answer before any deployment is registered
        require_prefect_server()
        check_tracking_store(tracking_uri())
        _print_deployments(plans)

        from casework.flows.deploy import serve_deployments

        quiet_expected_errors()
        serve_deployments(plans, None if runner == "threads" else task_runner, limit)


def _write_prefect_yaml(plans: list[Any], path: Path, work_pool: str) -> None:
    from casework.flows.deploy import render_prefect_yaml
    from casework.tasks.score_io import check_output_file

    check_output_file(path, "--write-prefect-yaml", "prefect.yaml")
    path.write_text(render_prefect_yaml(plans, work_pool), encoding="utf-8")
    console.print(
        f"wrote {len(plans)} deployments for work pool {work_pool!r} to {path}; "
        f"register them with 'prefect deploy --all' and run them with "
        f"'prefect worker start --pool {work_pool}'"
    )


def _print_deployments(plans: list[Any]) -> None:
    table = Table("deployment", "schedule (UTC)", "parameters", box=None)
    for plan in plans:
        table.add_row(
            f"{plan.flow.kind}/{plan.name}",
            plan.cron or "-",
            ", ".join(f"{k}={v}" for k, v in plan.parameters.items()),
        )
    console.print(table)


@app.command()
def score(
    usecase: Annotated[
        str, typer.Argument(help="Use-case name, or path to a usecase.yaml.")
    ],
    input: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            help="Rows to score: a .csv/.parquet file, or a SQL URL with --input-table "
            "or --input-query. Default: the spec's scoring.input.",
        ),
    ] = "",
    input_table: Annotated[
        str,
        typer.Option(help="Table to read from a SQL --input (schema.table allowed)."),
    ] = "",
    input_query: Annotated[
        str, typer.Option(help="Query to read from a SQL --input, instead of a table.")
    ] = "",
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Where scores go: a .csv/.parquet file (replaced atomically), or a SQL "
            "URL with --output-table. Default: the spec's scoring.output.",
        ),
    ] = "",
    output_table: Annotated[
        str,
        typer.Option(help="Table to write for a SQL --output (schema.table allowed)."),
    ] = "",
    mode: Annotated[
        str,
        typer.Option(
            help="For a SQL output: append rows, or replace the table "
            "(default: the spec's scoring.output.mode, else append)."
        ),
    ] = "",
    alias: Annotated[
        str, typer.Option(help="Registry alias to score with (default: champion).")
    ] = "",
    version: Annotated[
        str, typer.Option(help="Model version to score with, instead of an alias.")
    ] = "",
    chunk_rows: Annotated[
        int, typer.Option(help="Rows per chunk (default: the spec's, 50000).")
    ] = 0,
) -> None:
    """Score rows with a registered model: one output row per input row."""
    # NOTE: the options mirror the parameters of the flow casework.flows.score.score.
    with _reported():
        from casework.errors import DataError
        from casework.tasks.sql import lift_password
        from casework.usecases import load_usecase

        if mode not in ("", "append", "replace"):
            raise DataError(f"--mode {mode!r} is not known; expected append or replace")
        if alias and version:
            raise DataError("give --alias or --version, not both")
        if version:
            _check_version_number(version)
        if chunk_rows < 0:
            raise DataError(
                f"--chunk-rows {chunk_rows}: expected a number of rows above 0 (or 0, "
                "the default, for the spec's)"
            )
        # A bad name, spec, input or output fails before anything starts; nothing
        # here imports Prefect, which must first see the local API's URL (as in run)
        spec = load_usecase(usecase)
        _check_endpoints(
            spec, input, input_table, input_query, output, output_table, mode
        )
        local_api = _prepare(start_prefect=True)
        from casework.flows.score import score as score_flow

        with _started(score_flow, None, local_api) as flow:
            summary = flow(
                usecase=usecase,
                # Passwords move to environment variables: flow parameters are stored.
                input=lift_password(input, "CASEWORK_INPUT_PASSWORD"),
                input_table=input_table,
                input_query=input_query,
                output=lift_password(output, "CASEWORK_OUTPUT_PASSWORD"),
                output_table=output_table,
                mode=mode or None,
                alias=alias,
                version=version,
                chunk_rows=chunk_rows,
            )
        _print_score_summary(summary)


@app.command()
def models(
    usecase: Annotated[
        str, typer.Argument(help="Use-case name, or path to a usecase.yaml.")
    ],
) -> None:
    """List the registered versions of a use case's model, with metric and aliases."""
    with _reported():
        from casework.usecases import load_usecase

        spec = load_usecase(usecase)
        _prepare(check_tracking=True, require_registry=True)
        from casework.tasks.registry_view import list_versions

        rows = list_versions(spec.model_name)
        if not rows:
            console.print(
                f"No registered versions of {spec.model_name!r} yet: run "
                f"'casework run {usecase}'."
            )
            return
        metric = rows[0]["metric"]
        table = Table(title=f"models:/{spec.model_name}", box=None)
        for header in (
            "version",
            "aliases",
            f"test {metric}",
            "created (UTC)",
            "data",
            "run",
        ):
            table.add_column(header, no_wrap=True)
        for row in rows:
            table.add_row(
                str(row["version"]),
                str(row["aliases"]),
                _rounded(row["score"]),
                str(row["created"])[5:],
                str(row["fingerprint"])[:8],
                str(row["run_id"])[:8],
            )
        console.print(table)


@app.command()
def promote(
    usecase: Annotated[
        str, typer.Argument(help="Use-case name, or path to a usecase.yaml.")
    ],
    version: Annotated[str, typer.Option(help="The model version to make champion.")],
) -> None:
    """Give the champion alias to a version by hand, overriding the gate."""
    with _reported():
        from casework.usecases import load_usecase

        _check_version_number(version)
        spec = load_usecase(usecase)
        _prepare(check_tracking=True, require_registry=True)
        from casework.tasks.registry_view import set_champion

        set_champion(spec.model_name, version)
        console.print(f"models:/{spec.model_name}@champion is now version {version}")


def _check_version_number(version: str) -> None:
    if not version.isdigit() or int(version) == 0:
        raise CaseworkError(
            f"--version {version!r}: expected a version number such as 3"
        )


def _print_train_summary(summary: dict[str, Any]) -> None:
    metric = summary["primary_metric"]
    table = Table(
        "candidate",
        f"validation {metric}",
        "fit seconds",
        title=f"casework run {summary['usecase']}: {summary['rows']} rows",
    )
    for row in summary["candidates"]:
        name = row["name"] + (
            " [bold](winner)[/]" if row["name"] == summary["winner"] else ""
        )
        table.add_row(
            name, f"{row['validation_score']:.4f}", f"{row['fit_seconds']:.1f}"
        )
    console.print(table)

    test = summary["test_metrics"]
    keys = dict.fromkeys((metric, "pr_auc", "f1", "macro_f1", "brier", "log_loss"))
    shown = ", ".join(f"{k} {test[k]:.4f}" for k in keys if k in test)
    console.print(f"test rows: {shown}")
    if "expected_cost" in test:
        console.print(
            f"expected cost on test rows: {test['expected_cost']:,.2f} (flag nothing "
            f"{test['cost_flag_nothing']:,.2f}, flag everything "
            f"{test['cost_flag_everything']:,.2f})"
        )
    if summary["threshold"] is not None:
        console.print(f"decision threshold: {summary['threshold']:.4f}")
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    if summary["version"]:
        console.print(
            f"registered [bold]{summary['model_name']} v{summary['version']}[/] "
            f"aliases: {', '.join(summary['aliases'])}"
        )
        console.print(f"gate: {summary['gate']['reason']}")
        console.print(f"load: models:/{summary['model_name']}@champion")
    console.print(
        f"MLflow run {summary['run_id']} (experiment {summary['experiment_id']}) "
        f"at {summary['tracking_uri']}"
    )


def _print_score_summary(summary: dict[str, Any]) -> None:
    from casework.flows.score import decision_rule, row_count, written_as

    console.print(
        f"scored [bold]{row_count(summary['rows'])}[/] with "
        f"[bold]{summary['model_name']} v{summary['model_version']}[/] "
        f"({decision_rule(summary['threshold'])}) in {summary['seconds']:.1f} s "
        f"({summary['rows_per_second']:,.0f} rows/s)"
    )
    console.print(f"input:  {summary['input']}", highlight=False)
    console.print(
        f"output: {summary['output']} ({written_as(summary['mode'])})",
        highlight=False,
    )
    labels = ", ".join(f"{k}: {v:,}" for k, v in summary["labels"].items())
    console.print(f"labels: {labels}")
    for key, text in (
        ("unseen_categories", "categories never seen in training (scored)"),
        ("unparsable_numbers", "cells that are not numbers (scored as missing)"),
    ):
        if summary[key]:
            counts = ", ".join(f"{c}: {n:,}" for c, n in summary[key].items())
            console.print(f"[yellow]note:[/] {text}: {counts}")
    console.print(f"MLflow run {summary['run_id']}")


def _rounded(score: str) -> str:
    """A version tag's score to 4 decimals, as ``casework run`` prints it."""
    try:
        return f"{float(score):.4f}"
    except ValueError:
        return score


def _check_endpoints(spec: Any, *arguments: str) -> None:
    """Inputs and outputs that cannot work fail here, before Prefect starts: an input
    file that is not there, a ``${VAR}`` that is not set, a suffix casework cannot
    write, an output that is a folder or in a folder that does not exist."""
    from casework.tasks.frames import require_file
    from casework.tasks.score_io import (
        check_output_file,
        input_endpoint,
        output_endpoint,
        require_apart,
    )
    from casework.tasks.sql import expand_url

    input, input_table, input_query, output, output_table, mode = arguments
    source = input_endpoint(spec, input, input_table, input_query)
    sink = output_endpoint(spec, output, output_table, mode or None)
    if source.path is not None:
        require_file(source.path, "input")
    if sink.path is not None:
        check_output_file(sink.path)
    for endpoint in (source, sink):
        if endpoint.url:
            expand_url(endpoint.url)
    require_apart(source, sink)


def _print_all_summary(outcomes: list[dict[str, Any]]) -> None:
    table = Table(
        "use case",
        "status",
        "winner",
        "test score",
        "version",
        "aliases",
        "seconds",
        title=f"casework run --all: {len(outcomes)} use cases",
    )
    for row in outcomes:
        score = f"{row['metric']} {row['test_score']:.4f}" if row["metric"] else "-"
        table.add_row(
            row["usecase"],
            "[green]ok[/]" if row["ok"] else "[red]failed[/]",
            row["winner"] or "-",
            score,
            row["version"] or "-",
            row["aliases"] or "-",
            f"{row['seconds']:.1f}",
        )
    console.print(table)


# The code the process ends with; an error nobody caught leaves it at 1.
_exit_code = 1

# The signal (SIGINT, SIGTERM or SIGHUP) the command was stopped by, if any.
_stopped_by: int | None = None


def main() -> None:
    """Entry point of the ``casework`` console script."""
    global _exit_code

    # Registered first, so it runs after every exit handler Prefect and MLflow add.
    atexit.register(_exit_without_teardown)
    _stop_on_signals()
    try:
        app()
    except SystemExit as exc:
        # typer turns a Ctrl-C, and so a SIGTERM or SIGHUP, into exit code 130
        _exit_code = exc.code if isinstance(exc.code, int) else int(bool(exc.code))
        if _stopped_by is not None:
            _exit_code = _report_stop(_stopped_by)
        raise
    except BaseException:
        # An interrupt landing inside a library can come out as its own error (an
        # import inside pydantic's serializer raises PydanticSerializationError)
        if _stopped_by is None:
            raise
        _exit_code = _report_stop(_stopped_by)
        sys.exit(_exit_code)


def _report_stop(signal_number: int) -> int:
    """Say what stopped the command; returns its exit code, 128 + the signal."""
    if signal_number == signal.SIGINT:
        errors.print("interrupted")
    else:
        errors.print(f"stopped by {signal.Signals(signal_number).name}")
    return 128 + signal_number


def _stop_on_signals() -> None:
    """Handle Ctrl-C, SIGTERM (``docker stop``, ``timeout``) and SIGHUP (a closed
    terminal) alike: the flow run and the MLflow run end as interrupted, and the exit
    handlers stop the local API. By default SIGTERM and SIGHUP kill the process at
    once, leaving the API running and the MLflow run open."""

    def interrupt(signal_number: int, frame: Any) -> None:
        global _stopped_by
        _stopped_by = signal_number
        raise KeyboardInterrupt

    for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signal_number, interrupt)


def _exit_without_teardown() -> None:
    """End the process once the exit handlers have run (Prefect's log and event
    flushes, the local API's stop), skipping the interpreter's own teardown.

    After a run that loaded torch and OpenMP, that teardown takes about 3 s of the
    command's wall time (bench/overhead.py) and writes nothing.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_code)


if __name__ == "__main__":
    main()
