"""casework: Prefect flows from raw data to a versioned MLflow model and back out as scores."""

__version__ = "0.1.0"
