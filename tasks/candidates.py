"""The candidate models a use case can list, by name.

Each factory builds an unfitted scikit-learn estimator; the cleaning steps are put in
front of it by :func:`casework.tasks.clean.build_model_pipeline`. Heavy libraries
(torch, skorch) are imported only when a candidate needs them.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import Callable, Iterator
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import Interval, InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from casework.errors import SpecError

__all__ = [
    "CANDIDATES",
    "TorchMLPClassifier",
    "check_candidates",
    "import_libraries",
    "make_candidate",
]

logger = logging.getLogger(__name__)


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """A one-hidden-layer network trained with torch through skorch.

    The classic shape: a linear layer, ReLU, a linear output layer with a sigmoid
    (two classes, binary cross-entropy) or a softmax (more classes, cross-entropy),
    trained with Adam. After ``fit`` the weights are kept as NumPy arrays and the
    torch objects are dropped, so the fitted model saves and loads safely with skops
    and predicts without importing torch.

    Args:
        hidden_units: width of the hidden layer, default 32.
        max_epochs: passes over the training rows, default 40.
        learning_rate: Adam's step size, default 3e-3.
        batch_size: rows per gradient step, default 128.
        weight_decay: L2 penalty passed to Adam, default 1e-4.
        random_state: seed for torch's weight initialisation and shuffling.
        threads: torch threads while fitting, default 1: batches this small train
            fastest on one thread, and the other cores stay free for the candidates
            fitted beside this one (two threads took 18x longer on a loaded 2-core
            machine).
    """

    # Checked by scikit-learn's ``_validate_params``, as its own estimators are.
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden_units": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both")],
        "threads": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        hidden_units: int = 32,
        max_epochs: int = 40,
        learning_rate: float = 3e-3,
        batch_size: int = 128,
        weight_decay: float = 1e-4,
        random_state: int = 0,
        threads: int = 1,
    ):
        self.hidden_units = hidden_units
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.threads = threads

    def fit(self, X: np.ndarray, y: np.ndarray) -> TorchMLPClassifier:
        self._validate_params()
        X = np.asarray(X, dtype=np.float32)
        self.classes_, y_index = np.unique(np.asarray(y), return_inverse=True)
        self.n_features_in_ = X.shape[1]
        net = self._skorch_net(len(self.classes_))
        target = y_index.astype(np.float32 if self._is_binary else np.int64)
        with _torch_threads(self.threads):
            net.fit(X, target)

        module = net.module_
        self.hidden_weights_ = module.hidden.weight.detach().numpy().T.copy()
        self.hidden_bias_ = module.hidden.bias.detach().numpy().copy()
        self.output_weights_ = module.output.weight.detach().numpy().T.copy()
        self.output_bias_ = module.output.bias.detach().numpy().copy()
        self.train_loss_ = [float(epoch["train_loss"]) for epoch in net.history]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "output_weights_")
        X = np.asarray(X, dtype=np.float32)
        hidden = np.maximum(X @ self.hidden_weights_ + self.hidden_bias_, 0.0)
        # float64 so the softmax rows sum to one within log_loss's tolerance
        logits = (hidden @ self.output_weights_ + self.output_bias_).astype(np.float64)
        if self._is_binary:
            positive = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 0], -50, 50)))
            return np.column_stack([1.0 - positive, positive]).astype(np.float64)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def _is_binary(self) -> bool:
        return len(self.classes_) == 2

    def _skorch_net(self, n_classes: int):
        import torch
        from skorch import NeuralNetBinaryClassifier, NeuralNetClassifier

        torch.manual_seed(self.random_state)
        binary = n_classes == 2
        options = dict(
            module=_mlp_module(),
            module__n_features=self.n_features_in_,
            module__hidden_units=self.hidden_units,
            module__n_outputs=1 if binary else n_classes,
            module__sigmoid_output=binary,
            optimizer=torch.optim.Adam,
            optimizer__weight_decay=self.weight_decay,
            lr=self.learning_rate,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            train_split=None,
            verbose=0,
            # skorch's epoch table prints whenever its sink is not the current
            # print, as inside a flow that logs prints; the loss is kept in train_loss_
            callbacks__print_log=None,
        )
        if binary:
            return NeuralNetBinaryClassifier(criterion=torch.nn.BCELoss, **options)
        return NeuralNetClassifier(criterion=torch.nn.CrossEntropyLoss, **options)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` for the block."""
    import torch

    # A process-wide setting: two networks fitted at once may restore each other's.
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mlp_module() -> type:
    """The torch module class, defined on first use so torch loads only when needed."""
    import torch

    class MLP(torch.nn.Module):
        def __init__(self, n_features, hidden_units, n_outputs, sigmoid_output):
            super().__init__()
            self.hidden = torch.nn.Linear(n_features, hidden_units)
            self.output = torch.nn.Linear(hidden_units, n_outputs)
            self.sigmoid_output = sigmoid_output

        def forward(self, X):
            logits = self.output(torch.relu(self.hidden(X)))
            if self.sigmoid_output:
                return torch.sigmoid(logits.squeeze(-1))
            return logits

    return MLP


def _baseline(seed: int) -> BaseEstimator:
    return DummyClassifier(strategy="prior")


def _logistic_regression(seed: int) -> BaseEstimator:
    return LogisticRegression(max_iter=2000, random_state=seed)


def _hist_gradient_boosting(seed: int) -> BaseEstimator:
    return HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=300, early_stopping=True, random_state=seed
    )


def _random_forest(seed: int) -> BaseEstimator:
    return RandomForestClassifier(
        n_estimators=300, min_samples_leaf=2, random_state=seed
    )


def _mlp(seed: int) -> BaseEstimator:
    return TorchMLPClassifier(random_state=seed)


CANDIDATES: dict[str, Callable[[int], BaseEstimator]] = {
    "baseline": _baseline,
    "logistic_regression": _logistic_regression,
    "hist_gradient_boosting": _hist_gradient_boosting,
    "random_forest": _random_forest,
    "mlp": _mlp,
}


def check_candidates(
    names: list[str], usecase: str, params: dict[str, dict[str, Any]] | None = None
) -> None:
    """Fail before any data is read when a spec lists a candidate casework lacks, or
    sets a parameter its estimator does not have or a value it does not accept."""
    for name in names:
        if name not in CANDIDATES:
            close = difflib.get_close_matches(name, list(CANDIDATES), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise SpecError(
                f"{usecase}: unknown candidate {name!r}{hint} "
                f"(known: {', '.join(CANDIDATES)})"
            )
    # Parameters of a candidate left out (e.g. by ``--candidates``) are still checked.
    for name, settings in (params or {}).items():
        if name not in CANDIDATES:
            raise SpecError(
                f"{usecase}: candidate_params names {name!r}, which is no candidate "
                f"(known: {', '.join(CANDIDATES)})"
            )
        known = CANDIDATES[name](0).get_params(deep=False)
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise SpecError(
                f"{usecase}: candidate_params.{name} sets {unknown}, which the "
                f"estimator does not have (known: {', '.join(sorted(known))})"
            )
        for parameter, value in settings.items():
            _check_value(usecase, name, parameter, value)


def _check_value(usecase: str, name: str, parameter: str, value: Any) -> None:
    """Hold one ``candidate_params`` value to the constraints its estimator declares,
    as scikit-learn would at the start of ``fit``."""
    estimator = CANDIDATES[name](0).set_params(**{parameter: value})
    try:
        estimator._validate_params()
    except InvalidParameterError as exc:
        raise SpecError(
            f"{usecase}: candidate_params.{name}.{parameter}: {exc}"
            f"{_yaml_number_hint(value)}"
        ) from None


def _yaml_number_hint(value: Any) -> str:
    """A hint for numbers YAML reads as text, such as ``1e-3`` (it wants ``1.0e-3``)."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    return f" (YAML read {value!r} as text: write it as {number!r})"


def import_libraries(names: list[str]) -> None:
    """Import the heavy libraries the named candidates fit with (torch and skorch
    for ``mlp``), so that a caller can pay for them ahead of the first fit."""
    if "mlp" in names:
        import skorch  # noqa: F401
        import torch  # noqa: F401


def make_candidate(
    name: str, seed: int, params: dict[str, Any] | None = None
) -> BaseEstimator:
    """A fresh, unfitted estimator for a candidate name, with the spec's parameters
    (``candidate_params``) set over casework's defaults."""
    estimator = CANDIDATES[name](seed)
    return estimator.set_params(**params) if params else estimator
