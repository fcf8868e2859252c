"""The same work as `casework run churn`, as a plain scikit-learn script: no Prefect,
no MLflow. The overhead benchmark times it beside casework.

Reads the CSV, splits 80/20 stratified and then 80/20 again for validation, fits the
three candidates (logistic regression, histogram gradient boosting, a one-hidden-layer
torch MLP through skorch), picks the best on validation ROC-AUC, refits it on train
plus validation, and prints its test ROC-AUC.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from skorch import NeuralNetBinaryClassifier

CSV = (
    Path(__file__).resolve().parents[1]
    / "usecases"
    / "churn"
    / "data"
    / "telco_churn.csv"
)


class MLP(torch.nn.Module):
    def __init__(self, n_features: int, hidden_units: int = 32):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, hidden_units)
        self.output = torch.nn.Linear(hidden_units, 1)

    def forward(self, X):
        return torch.sigmoid(self.output(torch.relu(self.hidden(X))).squeeze(-1))


def main() -> None:
    started = time.perf_counter()
    frame = pd.read_csv(CSV)
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    y = (frame.pop("Churn") == "Yes").astype(np.float32).to_numpy()
    X = frame.drop(columns="customerID")
    numeric = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"]
    categorical = [c for c in X.columns if c not in numeric]

    rest, test = train_test_split(
        np.arange(len(y)), test_size=0.2, random_state=42, stratify=y
    )
    train, valid = train_test_split(
        rest, test_size=0.2, random_state=42, stratify=y[rest]
    )

    encode = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            ),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            ),
        ]
    )
    n_features = encode.fit(X.iloc[train]).transform(X.iloc[:2]).shape[1]
    torch.manual_seed(42)
    candidates = {
        "logistic_regression": LogisticRegression(max_iter=2000),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=300, early_stopping=True, random_state=42
        ),
        "mlp": Pipeline(
            [
                ("float32", FunctionTransformer(lambda a: a.astype(np.float32))),
                (
                    "net",
                    NeuralNetBinaryClassifier(
                        MLP,
                        module__n_features=n_features,
                        criterion=torch.nn.BCELoss,
                        optimizer=torch.optim.Adam,
                        lr=3e-3,
                        max_epochs=40,
                        batch_size=128,
                        train_split=None,
                        verbose=0,
                        iterator_train__shuffle=True,
                    ),
                ),
            ]
        ),
    }

    scores = {}
    for name, estimator in candidates.items():
        model = Pipeline([("encode", clone(encode)), ("model", estimator)])
        model.fit(X.iloc[train], y[train])
        scores[name] = roc_auc_score(y[valid], model.predict_proba(X.iloc[valid])[:, 1])
        candidates[name] = model
    winner = max(scores, key=scores.get)
    final = clone(candidates[winner]).fit(X.iloc[rest], y[rest])
    test_auc = roc_auc_score(y[test], final.predict_proba(X.iloc[test])[:, 1])
    print(
        f"winner {winner}, test roc_auc {test_auc:.4f}, "
        f"{time.perf_counter() - started:.1f} s inside the script",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
