"""The use-case spec: one YAML file that says what to learn, from which data, and how.

A spec is validated by pydantic when it is loaded, so a bad setting fails before any
data is touched, with the file, the field and what was expected in one line.
"""

from __future__ import annotations

import logging
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from casework.errors import SpecError, first_line, utf8_break

__all__ = [
    "CsvSource",
    "MetricSpec",
    "ParquetSource",
    "PythonSource",
    "ScheduleSpec",
    "ScoringSpec",
    "SinkSpec",
    "SourceSpec",
    "SplitSpec",
    "SqlSink",
    "SqlSource",
    "TargetSpec",
    "ThresholdSpec",
    "UseCaseSpec",
    "load_spec",
]

logger = logging.getLogger(__name__)

DEFAULT_CANDIDATES = ("logistic_regression", "hist_gradient_boosting", "mlp")

BINARY_METRICS = ("roc_auc", "pr_auc", "f1", "brier", "log_loss", "accuracy")
MULTICLASS_METRICS = ("macro_f1", "accuracy", "log_loss", "roc_auc_ovr")

# Metrics where a smaller value is better; every other metric is maximised.
LOWER_IS_BETTER = frozenset({"brier", "log_loss"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvSource(_Strict):
    """A CSV file (gzip and other compressions are read by their ending)."""

    kind: Literal["csv"] = "csv"
    path: str
    separator: str = ","


class ParquetSource(_Strict):
    """A Parquet file."""

    kind: Literal["parquet"] = "parquet"
    path: str


class SqlSource(_Strict):
    """A table or a query in a database SQLAlchemy can reach.

    ``url`` may hold ``${VAR}`` placeholders, filled from the environment when the
    data is read, so passwords stay out of the YAML.
    """

    kind: Literal["sql"] = "sql"
    url: str
    table: str | None = None
    query: str | None = None
    schema_name: str | None = Field(default=None, alias="schema")
    chunk_rows: int = Field(default=50_000, gt=0)

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class PythonSource(_Strict):
    """A Python callable, named ``module:function``, that returns a DataFrame."""

    kind: Literal["python"] = "python"
    callable: str


SourceSpec = Annotated[
    CsvSource | ParquetSource | SqlSource | PythonSource,
    Field(discriminator="kind"),
]


class TargetSpec(_Strict):
    """The column to predict; ``positive`` names the positive class of a binary target."""

    column: str
    positive: str | int | None = None

    @field_validator("positive", mode="before")
    @classmethod
    def _no_yaml_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(
                "YAML reads an unquoted Yes, No, true, false, on or off as a "
                "boolean; quote the label, e.g. positive: 'Yes'"
            )
        return value


class SplitSpec(_Strict):
    """How rows are held out: ``test_size`` for the final test, ``validation_size``
    (a fraction of what remains) for choosing the model and its threshold."""

    strategy: Literal["stratified", "random", "time"] = "stratified"
    test_size: float = Field(default=0.2, gt=0.0, lt=0.5)
    validation_size: float = Field(default=0.2, gt=0.0, lt=0.5)
    seed: int = Field(default=42, ge=0)
    column: str | None = None

    @model_validator(mode="after")
    def _time_needs_column(self) -> SplitSpec:
        if self.strategy == "time" and not self.column:
            raise ValueError(
                "strategy 'time' needs 'column', the column to order rows by"
            )
        return self


class MetricSpec(_Strict):
    """The metric that picks the winner and guards the champion alias."""

    primary: str = "roc_auc"
    promote_margin: float = Field(default=0.0, ge=0.0)

    @field_validator("primary")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        known = sorted(set(BINARY_METRICS) | set(MULTICLASS_METRICS))
        if value not in known:
            raise ValueError(
                f"unknown metric {value!r}; expected one of {', '.join(known)}"
            )
        return value

    @property
    def greater_is_better(self) -> bool:
        return self.primary not in LOWER_IS_BETTER


class ThresholdSpec(_Strict):
    """How the decision threshold of a binary model is chosen on validation rows."""

    strategy: Literal["default", "max_f1", "min_recall", "min_precision", "cost"] = (
        "default"
    )
    min_recall: float | None = Field(default=None, gt=0.0, le=1.0)
    min_precision: float | None = Field(default=None, gt=0.0, le=1.0)
    # With min_recall or min_precision: the minimum must hold at this one-sided
    # confidence (the Wilson lower bound of the rate), not just as a point estimate.
    confidence: float | None = Field(default=None, ge=0.5, lt=1.0)
    false_positive_cost: float | None = Field(default=None, ge=0.0)
    false_negative_cost: float | None = Field(default=None, ge=0.0)
    false_negative_cost_column: str | None = None

    @model_validator(mode="after")
    def _strategy_has_its_setting(self) -> ThresholdSpec:
        needs = {
            "min_recall": self.min_recall is not None,
            "min_precision": self.min_precision is not None,
            "cost": self.false_positive_cost is not None
            and (
                self.false_negative_cost is not None
                or self.false_negative_cost_column is not None
            ),
        }
        if not needs.get(self.strategy, True):
            settings = {
                "min_recall": "'min_recall'",
                "min_precision": "'min_precision'",
                "cost": "'false_positive_cost' and 'false_negative_cost' "
                "(or 'false_negative_cost_column')",
            }
            raise ValueError(
                f"strategy {self.strategy!r} needs {settings[self.strategy]}"
            )
        return self


# The fields of a cron expression, in order, and the values each one takes.
_CRON_FIELDS = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31, a day the months given have",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT (0 and 7 are Sunday)",
}


def _cron_problem(fields: list[str], reason: str) -> str:
    """Which field of a five-field cron expression cronsim refused (it says
    ``Bad <field>``), with the values that field takes."""
    name = reason.removeprefix("Bad ")
    if name not in _CRON_FIELDS:
        return f"not a valid cron expression: {reason}"
    value = fields[list(_CRON_FIELDS).index(name)]
    return (
        f"not a valid cron expression: the {name} field {value!r} is out of range "
        f"or not understood; expected {_CRON_FIELDS[name]}"
    )


class ScheduleSpec(_Strict):
    """Cron expressions for scheduled training and scoring (server time zone UTC)."""

    train: str | None = None
    score: str | None = None

    @field_validator("train", "score")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from datetime import datetime

        from cronsim import CronSim, CronSimError

        # cronsim would read six fields as seconds first, Prefect's cron as seconds last
        fields = value.split()
        if len(fields) != len(_CRON_FIELDS):
            raise ValueError(
                f"not a valid cron expression: it has {len(fields)} fields; expected "
                f"five, {' '.join(_CRON_FIELDS)}, e.g. '0 3 * * 1'"
            )
        try:
            CronSim(value, datetime(2026, 1, 1))
        except CronSimError as exc:
            raise ValueError(_cron_problem(fields, str(exc))) from None
        return value


class HooksSpec(_Strict):
    """Optional Python hooks, each named ``module:function`` or ``file.py:function``.

    ``prepare`` turns the raw training frame into one with the target column (it runs
    at training only); ``features`` adds feature columns to raw rows and becomes the
    first step of the registered model, so scoring applies it too.
    """

    prepare: str | None = None
    features: str | None = None


class SqlSink(_Strict):
    """A table that scores are written to, in one transaction.

    ``mode`` is ``append`` (add rows, creating the table if needed) or ``replace``
    (swap in a new table); ``url`` may hold ``${VAR}`` placeholders as for sources.
    """

    kind: Literal["sql"] = "sql"
    url: str
    table: str
    schema_name: str | None = Field(default=None, alias="schema")
    mode: Literal["append", "replace"] = "append"


SinkSpec = Annotated[
    CsvSource | ParquetSource | SqlSink,
    Field(discriminator="kind"),
]


class ScoringSpec(_Strict):
    """Defaults for the scoring flow: where rows come from and where scores go."""

    input: SourceSpec | None = None
    output: SinkSpec | None = None
    alias: str = "champion"
    chunk_rows: int = Field(default=50_000, gt=0)


class UseCaseSpec(_Strict):
    """One use case: its data, its target, and how models for it are chosen."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = ""
    intended_use: str = ""
    source: SourceSpec
    target: TargetSpec
    id_columns: list[str] = []
    pii_columns: list[str] = []
    drop_columns: list[str] = []
    deduplicate: bool = False
    split: SplitSpec = SplitSpec()
    candidates: list[str] = list(DEFAULT_CANDIDATES)
    candidate_params: dict[str, dict[str, Any]] = {}
    metric: MetricSpec = MetricSpec()
    threshold: ThresholdSpec = ThresholdSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    hooks: HooksSpec = HooksSpec()
    scoring: ScoringSpec = ScoringSpec()
    registered_model: str | None = None
    known_limits: list[str] = []

    _spec_path: Path | None = PrivateAttr(default=None)

    @field_validator("candidates")
    @classmethod
    def _at_least_one_candidate(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one candidate model")
        if len(set(value)) != len(value):
            raise ValueError(f"candidates are listed twice: {value}")
        return value

    @model_validator(mode="after")
    def _target_is_not_excluded(self) -> UseCaseSpec:
        for field in ("id_columns", "pii_columns", "drop_columns"):
            if self.target.column in getattr(self, field):
                raise ValueError(
                    f"the target column {self.target.column!r} is listed in {field}; "
                    "a column is either the target or excluded from the features"
                )
        return self

    @property
    def model_name(self) -> str:
        """The registered model's name: ``registered_model``, else the use-case name."""
        return self.registered_model or self.name

    @property
    def spec_path(self) -> Path | None:
        """The YAML file the spec was read from, if any."""
        return self._spec_path

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the spec are resolved against."""
        return self._spec_path.parent if self._spec_path else Path.cwd()

    def resolve_path(self, path: str) -> Path:
        """A path from the spec, made absolute against the spec's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def excluded_columns(self) -> list[str]:
        """Columns that are never features: ids, PII, dropped ones and the target."""
        excluded = [*self.id_columns, *self.pii_columns, *self.drop_columns]
        return [*dict.fromkeys([*excluded, self.target.column])]

    def with_overrides(self, **changes: Any) -> UseCaseSpec:
        """A copy of this spec with some top-level fields replaced and re-validated."""
        data = self.model_dump(by_alias=True)
        data.update(changes)
        return _validate(data, self._spec_path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: PyYAML would
    keep the last one silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # a list or mapping as key: PyYAML reports it itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_spec(path: Path) -> UseCaseSpec:
    """Read and validate a use-case spec from a YAML file.

    Raises:
        SpecError: the file is missing, is not YAML, or a field is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: use-case spec not found")
    try:
        data = yaml.load(_spec_text(path), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SpecError(f"{path}{where}: not valid YAML: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}: expected a mapping of fields, got {type(data).__name__}"
        )
    return _validate(data, path)


def _spec_text(path: Path) -> str:
    raw = path.read_bytes()
    found = utf8_break(raw)
    if found:
        line, byte = found
        raise SpecError(
            f"{path} (line {line}): not UTF-8 text (byte {byte:#04x}); save the spec "
            "as UTF-8"
        )
    return raw.decode("utf-8-sig")


def _validate(data: dict[str, Any], path: Path | None) -> UseCaseSpec:
    try:
        spec = UseCaseSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc, path, data.get("name"))) from None
    spec._spec_path = path.resolve() if path else None
    return spec


# A wrong value is shown cut short: it may be long, or a nest of YAML aliases.
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxlist, _SHORT_REPR.maxstring = 2, 4, 80


def _describe(exc: ValidationError, path: Path | None, name: Any = None) -> str:
    """One line for the first problem of a validation error, naming file, field and,
    when it has one, the use case."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"] if not _is_union_tag(part))
    message = re.sub(r"^Value error, ", "", error["msg"])
    received = error.get("input")
    shown = (
        ""
        if isinstance(received, dict) or received is None
        else f" (got {_SHORT_REPR.repr(received)})"
    )
    more = len(exc.errors()) - 1
    tail = f"; and {more} more problem{'s' if more > 1 else ''}" if more else ""
    where = f"{path}: " if path else ""
    named = isinstance(name, str) and name
    if not field:  # a check across fields: its message names them
        subject = f"use case {name!r}: " if named else ""
        return f"{where}{subject}{message}{shown}{tail}"
    owner = f" of use case {name!r}" if named else ""
    return f"{where}field {field!r}{owner}: {message}{shown}{tail}"


def _is_union_tag(part: Any) -> bool:
    return part in {"csv", "parquet", "sql", "python"}
