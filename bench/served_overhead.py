"""Orchestration overhead per run in a process that has its libraries loaded already,
as a served deployment or a worker's flow-run process that is reused.

bench/overhead.py times fresh processes, where imports dominate: Prefect, MLflow,
skops and matplotlib cost seconds that a plain script does not load. Here both sides
run in one process after their imports, so the difference is what each run pays for
Prefect (flow and task runs reported to an API), MLflow (runs, data set, model saved
with skops, registry) and the reviewer's extras (plots, permutation importance, card).

Plain: bench/plain_churn.py's ``main()``. casework: the ``train`` flow on ``churn``,
against a local Prefect API started as ``casework run`` starts it, with MLflow in a
new SQLite file. The first run of each warms lazy imports and is reported apart.

    python bench/served_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="warm runs of each (default 3)"
    )
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="casework-served-bench-")
    for name in [k for k in os.environ if k.startswith(("PREFECT_", "MLFLOW_"))]:
        del os.environ[name]
    os.environ["CASEWORK_HOME"] = home

    from casework.runtime import start_local_api
    from casework.settings import configure_environment

    configure_environment()
    # Stopped at exit, after Prefect has sent its last logs
    api = start_local_api()
    sys.path.insert(0, str(HERE))
    import plain_churn

    from casework.flows.train import import_libraries, train

    import_libraries(["logistic_regression", "hist_gradient_boosting", "mlp"])
    api.wait_until_ready()

    def casework_run() -> object:
        with api.flow_settings():
            return train(usecase="churn")

    first_plain, first_casework = timed(plain_churn.main), timed(casework_run)
    plain = [timed(plain_churn.main) for _ in range(args.repeats)]
    casework = [timed(casework_run) for _ in range(args.repeats)]

    plain_s, casework_s = statistics.median(plain), statistics.median(casework)
    print(f"first runs: plain {first_plain:.2f} s, casework {first_casework:.2f} s")
    print(f"plain main()        median {plain_s:6.2f} s (of {args.repeats})")
    print(f"casework train flow median {casework_s:6.2f} s (of {args.repeats})")
    print(
        f"overhead per served run     {casework_s - plain_s:6.2f} s "
        f"(x{casework_s / plain_s:.2f} of plain)"
    )


if __name__ == "__main__":
    main()
