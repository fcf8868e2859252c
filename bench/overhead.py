"""Orchestration overhead of `casework run churn` against a plain scikit-learn script.

Runs, each as a fresh process (imports included, as a user would see them):
  1. `casework --help`, five times (start-up of the command line);
  2. bench/plain_churn.py, the same candidates on the same data without Prefect/MLflow,
     as written (library default threads) and with OMP_NUM_THREADS=1 (one thread per
     fit, as casework fits its candidates); the faster of the two is the reference;
  3. `casework run churn` in a new CASEWORK_HOME (cold: databases are created), then
     twice more in the same home (warm).
Prints the wall times and the overhead (casework minus plain), in seconds and as a ratio.

    python bench/overhead.py [--repeats 2] [--prefect-api-url http://127.0.0.1:4200/api]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=2, help="warm runs of each (default 2)"
    )
    parser.add_argument(
        "--prefect-api-url",
        help="time casework against this running Prefect server instead of its "
        "per-command local API",
    )
    args = parser.parse_args()

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_", "CASEWORK_"))
    }
    casework = str(BIN / "casework")

    help_times = [timed([casework, "--help"], env) for _ in range(5)]
    plain_script = [sys.executable, str(HERE / "plain_churn.py")]
    plain_default = [timed(plain_script, env) for _ in range(args.repeats)]
    one_thread = {**env, "OMP_NUM_THREADS": "1"}
    plain_one = [timed(plain_script, one_thread) for _ in range(args.repeats)]

    with tempfile.TemporaryDirectory(prefix="casework-bench-") as home:
        run_env = {**env, "CASEWORK_HOME": home}
        if args.prefect_api_url:
            run_env["PREFECT_API_URL"] = args.prefect_api_url
        cold = timed([casework, "run", "churn"], run_env)
        warm = [timed([casework, "run", "churn"], run_env) for _ in range(args.repeats)]

    default_s, one_s = statistics.median(plain_default), statistics.median(plain_one)
    plain_s, warm_s = min(default_s, one_s), statistics.median(warm)
    print(
        f"casework --help          median {statistics.median(help_times):6.2f} s "
        f"(of {len(help_times)})"
    )
    print(f"plain, default threads   median {default_s:6.2f} s (of {args.repeats})")
    print(f"plain, OMP_NUM_THREADS=1 median {one_s:6.2f} s (of {args.repeats})")
    print(f"casework run churn cold         {cold:6.2f} s (new databases)")
    print(f"casework run churn warm  median {warm_s:6.2f} s (of {len(warm)})")
    print(f"reference: the faster plain run, {plain_s:.2f} s")
    print(
        f"overhead warm                   {warm_s - plain_s:6.2f} s "
        f"(x{warm_s / plain_s:.2f} of plain)"
    )
    print(
        f"overhead cold                   {cold - plain_s:6.2f} s "
        f"(x{cold / plain_s:.2f} of plain)"
    )


if __name__ == "__main__":
    main()
