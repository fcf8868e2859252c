"""Two more ways to lift the ``quality`` use case's macro-F1, measured on its training
and validation rows only (test rows are never read), against the spec's settings:

1. Other gradient-boosting libraries (LightGBM, XGBoost, CatBoost) on the same
   6 x 5 stratified folds as ``bench/quality_cv.py``, through the flow's pipeline.
2. Hyperparameter search with optuna, judged by nested cross-validation: in each of
   2 x 5 outer folds, optuna tunes HistGradientBoosting on 3 inner folds of the outer
   training rows, and the tuned settings and the spec's are scored on the outer rows.
   Tuning on all folds and reporting the best trial would flatter the search.

These libraries are not casework dependencies; they come with the ``bench`` extra:

    .venv/bin/pip install -e '.[bench]'
    python bench/quality_tuning.py              # about 45 minutes on 2 cores
    python bench/quality_tuning.py --trials 10  # fewer optuna trials per outer fold
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import time
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from quality_cv import (
    REPEATS,
    _fit_predict,
    _fold_scores,
    _out_of_fold,
    _print_row,
    _train_and_validation_rows,
)
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

logger = logging.getLogger(__name__)

OUTER_REPEATS = 2
OUTER_FOLDS = 5
INNER_FOLDS = 3

# Import names of the bench extra's libraries.
BENCH_LIBRARIES = ("lightgbm", "xgboost", "catboost", "optuna")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Other boosting libraries and a nested optuna search against the "
        "quality spec's settings, on its train and validation rows. Needs the bench "
        "extra: .venv/bin/pip install -e '.[bench]'"
    )
    parser.add_argument("--trials", type=int, default=30, help="optuna trials per fold")
    parser.add_argument("--skip-libraries", action="store_true")
    args = parser.parse_args(argv)
    missing = [
        name for name in BENCH_LIBRARIES if importlib.util.find_spec(name) is None
    ]
    if missing:
        print(
            f"error: {', '.join(missing)} not installed; this benchmark needs the bench "
            "extra: .venv/bin/pip install -e '.[bench]'",
            file=sys.stderr,
        )
        return 2

    from casework.usecases import load_usecase

    spec = load_usecase("quality")
    X, y = _train_and_validation_rows(spec)
    print(f"quality: {len(y)} train and validation rows")
    if not args.skip_libraries:
        _compare_libraries(spec, X, y)
    _nested_tuning(spec, X, y, args.trials)
    return 0


def _compare_libraries(spec: Any, X: Any, y: np.ndarray) -> None:
    from casework.tasks.candidates import make_candidate

    seed = spec.split.seed
    options = {
        "hist_gradient_boosting, spec now": make_candidate(
            "hist_gradient_boosting",
            seed,
            spec.candidate_params["hist_gradient_boosting"],
        ),
        **_library_models(seed),
    }
    print("\n| option | macro-F1 mean ± std | vs spec now | folds better | seconds |")
    print("|---|---|---|---|---|")
    reference = None
    for name, estimator in options.items():
        started = time.perf_counter()
        runs = [_out_of_fold(estimator, X, y, spec, r) for r in range(REPEATS)]
        scores = np.concatenate([_fold_scores(y, p, f) for p, f in runs])
        reference = scores if reference is None else reference
        _print_row(name, scores, reference, time.perf_counter() - started)


def _library_models(seed: int) -> dict[str, Any]:
    """Each library's classifier with settings like the spec's boosting: slower
    learning, balanced classes where the library offers it, half the features."""
    from catboost import CatBoostClassifier
    from lightgbm import LGBMClassifier
    from xgboost import XGBClassifier

    return {
        "LightGBM, 400 trees, learning rate 0.05, balanced": LGBMClassifier(
            n_estimators=400,
            learning_rate=0.05,
            min_child_samples=5,
            class_weight="balanced",
            colsample_bytree=0.5,
            subsample=0.8,
            subsample_freq=1,
            n_jobs=1,
            verbose=-1,
            random_state=seed,
        ),
        "XGBoost, 400 trees, learning rate 0.05": XGBClassifier(
            n_estimators=400,
            learning_rate=0.05,
            max_depth=6,
            subsample=0.8,
            colsample_bytree=0.5,
            n_jobs=1,
            random_state=seed,
        ),
        "CatBoost, 500 trees, learning rate 0.1, balanced": CatBoostClassifier(
            iterations=500,
            learning_rate=0.1,
            depth=6,
            auto_class_weights="Balanced",
            thread_count=1,
            verbose=0,
            allow_writing_files=False,  # else it leaves catboost_info/ in the folder
            random_seed=seed,
        ),
    }


def _nested_tuning(spec: Any, X: Any, y: np.ndarray, trials: int) -> None:
    started = time.perf_counter()
    folds = [
        fold
        for repeat in range(OUTER_REPEATS)
        for fold in StratifiedKFold(
            OUTER_FOLDS, shuffle=True, random_state=repeat
        ).split(X, y)
    ]
    print(
        f"\nnested: optuna, {trials} trials on {INNER_FOLDS} inner folds, in each of "
        f"{len(folds)} outer folds"
    )
    outcomes = Parallel(n_jobs=2)(
        delayed(_tune_and_score)(spec, X, y, train, test, trials)
        for train, test in folds
    )
    tuned = np.array([outcome[0] for outcome in outcomes])
    spec_now = np.array([outcome[1] for outcome in outcomes])
    for tuned_score, spec_score, best in outcomes:
        print(f"  tuned {tuned_score:.4f}, spec now {spec_score:.4f}: {best}")
    gain = tuned - spec_now
    print(
        f"tuned {tuned.mean():.4f} ± {tuned.std():.4f} against spec now "
        f"{spec_now.mean():.4f} ± {spec_now.std():.4f}: {gain.mean():+.4f}, better in "
        f"{int((gain > 0).sum())}/{len(gain)} outer folds "
        f"({time.perf_counter() - started:.0f} s)"
    )


def _tune_and_score(
    spec: Any, X: Any, y: np.ndarray, train: np.ndarray, test: np.ndarray, trials: int
) -> tuple[float, float, dict[str, Any]]:
    """Tune on the outer training rows only; score tuned and spec settings on ``test``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = spec.split.seed
    chosen = spec.candidate_params["hist_gradient_boosting"]
    inner = list(
        StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed).split(
            X.iloc[train], y[train]
        )
    )

    def objective(trial: Any) -> float:
        params = _search_space(trial)
        return float(
            np.mean([_score(spec, params, X, y, train[a], train[b]) for a, b in inner])
        )

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
    )
    # The first trial is the spec's settings (scikit-learn's defaults for the rest).
    defaults = {"max_leaf_nodes": 31, "l2_regularization": 1e-3}
    study.enqueue_trial(
        {**defaults, **{k: v for k, v in chosen.items() if k != "early_stopping"}}
    )
    study.optimize(objective, n_trials=trials)
    best = {"early_stopping": False, **study.best_params}
    return (
        _score(spec, best, X, y, train, test),
        _score(spec, chosen, X, y, train, test),
        best,
    )


def _search_space(trial: Any) -> dict[str, Any]:
    return {
        "early_stopping": False,
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_iter": trial.suggest_int("max_iter", 100, 600, step=50),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 63, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 30, log=True),
        "l2_regularization": trial.suggest_float(
            "l2_regularization", 1e-3, 10, log=True
        ),
        "max_features": trial.suggest_float("max_features", 0.2, 1.0),
        "class_weight": trial.suggest_categorical("class_weight", ["balanced", None]),
    }


def _score(
    spec: Any,
    params: dict[str, Any],
    X: Any,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
) -> float:
    from casework.tasks.candidates import make_candidate

    estimator = make_candidate("hist_gradient_boosting", spec.split.seed, params)
    proba = _fit_predict(estimator, X, y, spec, train, test)
    return float(f1_score(y[test], proba.argmax(axis=1), average="macro"))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main(sys.argv[1:]))
