"""Benchmark: rows per second of the score flow against a bare ``predict_proba``.

Scores the real churn rows repeated to ``--rows`` (default 1,000,000) four ways, each
in its own process so that each peak memory (``ru_maxrss``) is its own:

* ``bare``: ``pipeline.predict_proba`` on the in-memory frame (the yardstick);
* ``csv`` and ``parquet``: the score flow, file in → file out;
* ``sql``: the score flow, PostgreSQL table in → table out, once for all rows and once
  for a quarter of them, to show that peak memory follows the chunk size, not the
  table size.

Prefect's API is started and heavy libraries imported before the clock starts (as in
a long-running worker); the flow's time includes resolving and loading the model.
Run: ``python bench/score_throughput.py`` (about 3 to 5 minutes on 2 cores).
PostgreSQL comes from ``CASEWORK_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); without it the SQL case is
skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHURN_CSV = ROOT / "usecases" / "churn" / "data" / "telco_churn.csv"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        _run_case(args)
        return

    with tempfile.TemporaryDirectory(prefix="casework-bench-") as home:
        _orchestrate(args, Path(home))


def _orchestrate(args: argparse.Namespace, home: Path) -> None:
    print(
        f"casework score benchmark: {args.rows:,} rows, chunks of {args.chunk_rows:,}"
    )
    _child(["--case", "train"], home)
    _child(["--case", "prepare"], home, args)
    results = {"bare": _child(["--case", "bare"], home, args)}
    for case in ("csv", "parquet"):
        results[case] = _child(["--case", case], home, args)

    pg_url = _pg_url()
    if pg_url:
        schema = f"casework_bench_{uuid.uuid4().hex[:8]}"
        try:
            _load_table(pg_url, schema, args.rows)
            results["sql"] = _child(["--case", "sql", "--table", schema], home, args)
            quarter = argparse.Namespace(**{**vars(args), "rows": args.rows // 4})
            results["sql-quarter"] = _child(
                ["--case", "sql", "--table", schema], home, quarter
            )
        finally:
            _drop_schema(pg_url, schema)
    else:
        print("PostgreSQL not reachable: SQL case skipped")
    _report(results)


def _child(
    extra: list[str], home: Path, args: argparse.Namespace | None = None
) -> dict:
    command = [sys.executable, __file__, "--home", str(home), *extra]
    if args is not None:
        command += ["--rows", str(args.rows), "--chunk-rows", str(args.chunk_rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"benchmark case {extra} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report(results: dict[str, dict]) -> None:
    bare = results["bare"]["rows_per_second"]
    print()
    print(
        f"{'case':<12} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'vs bare':>8} {'peak MB':>8}"
    )
    for case, result in results.items():
        print(
            f"{case:<12} {result['rows']:>10,} {result['seconds']:>8.1f} "
            f"{result['rows_per_second']:>10,.0f} {result['rows_per_second'] / bare:>8.2f} "
            f"{result['peak_mb']:>8,.0f}"
        )


# Cases, each run in a child process -------------------------------------------------


def _run_case(args: argparse.Namespace) -> None:
    os.environ["CASEWORK_HOME"] = args.home
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from casework.settings import configure_environment

    configure_environment()
    case = args.case
    if case == "train":
        from casework.flows.train import train

        train(usecase="churn", candidates=["logistic_regression"])
        print(json.dumps({}))
        return

    if case == "prepare":
        # Input files are written by their own process, so that the page cache is
        # not still flushing them while a case runs.
        frame = _rows(args.rows)
        frame.to_csv(Path(args.home) / "rows.csv", index=False)
        frame.to_parquet(Path(args.home) / "rows.parquet")
        os.sync()
        print(json.dumps({}))
        return

    result = _bare(_rows(args.rows)) if case == "bare" else _flow(case, args)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _rows(n_rows: int):
    import pandas as pd

    real = pd.read_csv(CHURN_CSV).drop(columns=["Churn"])
    repeats = -(-n_rows // len(real))
    frame = pd.concat([real] * repeats, ignore_index=True).head(n_rows)
    frame["customerID"] = (
        frame["customerID"] + "-" + (frame.index // len(real)).astype(str)
    )
    return frame


def _bare(frame) -> dict:
    from casework.tasks.model_store import load_pipeline

    pipeline = load_pipeline("models:/churn@champion")
    X = frame.drop(columns=["customerID"])
    started = time.perf_counter()
    pipeline.predict_proba(X)
    seconds = time.perf_counter() - started
    return {"rows": len(X), "seconds": seconds, "rows_per_second": len(X) / seconds}


def _flow(case: str, args: argparse.Namespace) -> dict:
    from casework.runtime import start_local_api

    local_api = start_local_api()
    import mlflow.sklearn  # noqa: F401  heavy imports done before the clock starts
    import skops.io  # noqa: F401

    from casework.flows.score import score

    if local_api is not None:
        local_api.wait_until_ready()
    workdir = Path(args.home)
    if case == "sql":
        url = _pg_url()
        query = f'SELECT * FROM "{args.table}"."customers" LIMIT {int(args.rows)}'
        arguments = dict(
            input=url,
            input_query=query,
            output=url,
            output_table=f"{args.table}.scores",
            mode="replace",
        )
    else:
        source = workdir / f"rows.{case}"
        arguments = dict(input=str(source), output=str(workdir / f"scores.{case}"))

    started = time.perf_counter()
    summary = score(usecase="churn", chunk_rows=args.chunk_rows, **arguments)
    seconds = time.perf_counter() - started
    rows = summary["rows"]
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}


# PostgreSQL set-up -------------------------------------------------------------------


def _pg_url() -> str | None:
    import sqlalchemy as sa

    url = os.environ.get("CASEWORK_TEST_PG_URL") or DEFAULT_PG_URL
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception:
        return None
    return url


def _load_table(url: str, schema: str, n_rows: int) -> None:
    """The real rows in ``schema.customers``, repeated on the server to ``n_rows``."""
    import pandas as pd
    import sqlalchemy as sa

    from casework.tasks.sql import write_table

    real = pd.read_csv(CHURN_CSV).drop(columns=["Churn"])
    engine = sa.create_engine(url)
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        connection.execute(sa.DDL(f"CREATE SCHEMA {quote(schema)}"))
    write_table([real], url, "seed", schema)
    repeats = -(-n_rows // len(real))
    columns = ", ".join(quote(c) for c in real.columns if c != "customerID")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TABLE {quote(schema)}.customers AS "
                f"SELECT s.{quote('customerID')} || '-' || r AS {quote('customerID')}, "
                f"{columns} FROM {quote(schema)}.seed AS s "
                f"CROSS JOIN generate_series(1, {int(repeats)}) AS r"
            )
        )
    engine.dispose()


def _drop_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        connection.execute(sa.DDL(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE"))
    engine.dispose()


if __name__ == "__main__":
    main()
