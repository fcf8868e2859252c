"""The source of the ``disease`` use case: scikit-learn's bundled breast-cancer data."""

from __future__ import annotations

import logging

import pandas as pd

__all__ = ["TARGET", "load_frame"]

logger = logging.getLogger(__name__)

TARGET = "diagnosis"


def load_frame() -> pd.DataFrame:
    """The 569 diagnostic records as one frame, with the target spelled out.

    scikit-learn codes the target as 0 for malignant and 1 for benign; here it is the
    column ``diagnosis`` holding ``malignant`` or ``benign``.
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.copy()
    names = dict(enumerate(bunch.target_names))
    frame[TARGET] = bunch.target.map(names).astype("object")
    return frame
