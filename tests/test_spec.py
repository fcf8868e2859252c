"""The use-case spec: validation messages and discovery."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import yaml

from casework.errors import SpecError, UseCaseNotFoundError
from casework.usecases import available_usecases, discovery, load_spec, load_usecase

MINIMAL = {
    "name": "returns",
    "source": {"kind": "csv", "path": "returns.csv"},
    "target": {"column": "returned", "positive": "yes"},
}


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class TestSpecValidation:
    def test_minimal_spec_gets_defaults(self, tmp_path):
        spec = load_spec(_write(tmp_path / "u.yaml", MINIMAL))
        assert spec.split.strategy == "stratified"
        assert spec.candidates == [
            "logistic_regression",
            "hist_gradient_boosting",
            "mlp",
        ]
        assert spec.model_name == "returns"
        assert spec.resolve_path("returns.csv") == tmp_path / "returns.csv"

    def test_invalid_field_names_file_field_and_value(self, tmp_path):
        path = _write(tmp_path / "u.yaml", {**MINIMAL, "split": {"test_size": 0.7}})
        with pytest.raises(SpecError, match=r"u\.yaml: field 'split.test_size'.*0\.7"):
            load_spec(path)

    def test_unknown_field_is_refused(self, tmp_path):
        path = _write(tmp_path / "u.yaml", {**MINIMAL, "taget": {"column": "x"}})
        with pytest.raises(
            SpecError, match=r"field 'taget' of use case 'returns': Extra inputs"
        ):
            load_spec(path)

    def test_threshold_strategy_needs_its_setting(self, tmp_path):
        path = _write(
            tmp_path / "u.yaml", {**MINIMAL, "threshold": {"strategy": "min_recall"}}
        )
        with pytest.raises(SpecError, match="needs 'min_recall'"):
            load_spec(path)

    def test_time_split_needs_a_column(self, tmp_path):
        path = _write(tmp_path / "u.yaml", {**MINIMAL, "split": {"strategy": "time"}})
        with pytest.raises(SpecError, match="needs 'column'"):
            load_spec(path)

    def test_unknown_metric_lists_known_ones(self, tmp_path):
        path = _write(tmp_path / "u.yaml", {**MINIMAL, "metric": {"primary": "auc"}})
        with pytest.raises(SpecError, match="unknown metric 'auc'; expected one of"):
            load_spec(path)

    def test_a_key_given_twice_is_refused_naming_it_and_its_line(self, tmp_path):
        path = tmp_path / "u.yaml"
        path.write_text(
            "name: returns\n"
            "source: {kind: csv, path: returns.csv}\n"
            "target: {column: returned}\n"
            "candidates: [logistic_regression]\n"
            "candidates: [baseline]\n",
            encoding="utf-8",
        )
        with pytest.raises(SpecError) as raised:
            load_spec(path)
        assert str(raised.value) == (
            f"{path} (line 5): not valid YAML: key 'candidates' appears twice"
        )

    def test_an_unquoted_yes_as_positive_label_says_to_quote_it(self, tmp_path):
        path = tmp_path / "u.yaml"
        path.write_text(
            "name: returns\n"
            "source: {kind: csv, path: returns.csv}\n"
            "target: {column: returned, positive: Yes}\n",
            encoding="utf-8",
        )
        with pytest.raises(SpecError, match=r"quote the label, e.g. positive: 'Yes'"):
            load_spec(path)

    @pytest.mark.parametrize("field", ["id_columns", "pii_columns", "drop_columns"])
    def test_the_target_cannot_be_an_excluded_column(self, tmp_path, field):
        path = _write(tmp_path / "u.yaml", {**MINIMAL, field: ["returned"]})
        with pytest.raises(SpecError) as raised:
            load_spec(path)
        assert str(raised.value).startswith(
            f"{path}: use case 'returns': the target column 'returned' is listed in "
            f"{field}"
        )

    def test_invalid_cron_names_the_field_and_the_expression(self, tmp_path):
        path = _write(
            tmp_path / "u.yaml", {**MINIMAL, "schedule": {"train": "61 25 * * 9"}}
        )
        with pytest.raises(
            SpecError,
            match=r"'schedule.train' of use case 'returns': not a valid cron.*'61 25 \* \* 9'",
        ):
            load_spec(path)

    @pytest.mark.parametrize(
        ("expression", "problem"),
        [
            (
                "61 3 * * 1",
                "the minute field '61' is out of range or not understood; "
                "expected 0-59",
            ),
            (
                "0 3 * 13 *",
                "the month field '13' is out of range or not understood; "
                "expected 1-12 or JAN-DEC",
            ),
            (
                "0 3 * * 1 2",
                "it has 6 fields; expected five, minute hour day-of-month "
                "month day-of-week, e.g. '0 3 * * 1'",
            ),
        ],
        ids=["minute-61", "month-13", "six-fields"],
    )
    def test_invalid_cron_says_which_field_is_wrong(
        self, tmp_path, expression, problem
    ):
        path = _write(
            tmp_path / "u.yaml", {**MINIMAL, "schedule": {"score": expression}}
        )
        with pytest.raises(SpecError) as raised:
            load_spec(path)
        assert str(raised.value) == (
            f"{path}: field 'schedule.score' of use case 'returns': not a valid cron "
            f"expression: {problem} (got {expression!r})"
        )

    def test_negative_seed_is_refused_at_load(self, tmp_path):
        path = _write(tmp_path / "u.yaml", {**MINIMAL, "split": {"seed": -5}})
        with pytest.raises(SpecError, match=r"'split.seed'.*-5"):
            load_spec(path)

    def test_broken_yaml_names_the_line(self, tmp_path):
        path = tmp_path / "u.yaml"
        path.write_text("name: x\nsource: [unclosed\n", encoding="utf-8")
        with pytest.raises(SpecError, match=r"u\.yaml \(line \d+\): not valid YAML"):
            load_spec(path)

    def test_a_spec_that_is_not_utf8_names_the_line_and_byte(self, tmp_path):
        path = tmp_path / "u.yaml"
        path.write_bytes(b"name: returns\ndescription: caf\xe9\n")
        with pytest.raises(SpecError) as raised:
            load_spec(path)
        assert str(raised.value) == (
            f"{path} (line 2): not UTF-8 text (byte 0xe9); save the spec as UTF-8"
        )

    def test_a_nest_of_yaml_aliases_is_shown_cut_short(self, tmp_path):
        # Nine levels of ten aliases each: a billion strings if written out in full
        levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in range(1, 9):
            above = f"*a{level - 1}"
            levels.append(f"a{level}: &a{level} [{', '.join([above] * 10)}]")
        path = tmp_path / "u.yaml"
        path.write_text("\n".join([*levels, "name: *a8", ""]), encoding="utf-8")

        with pytest.raises(SpecError) as raised:
            load_spec(path)

        message = str(raised.value)
        assert "field 'name'" in message
        assert len(message) < 400

    def test_missing_spec_file_is_named(self, tmp_path):
        with pytest.raises(SpecError, match=r"nothere\.yaml: use-case spec not found"):
            load_spec(tmp_path / "nothere.yaml")


class TestDiscovery:
    def test_builtin_churn_is_found_by_name(self):
        assert "churn" in available_usecases()
        assert load_usecase("churn").target.column == "Churn"

    def test_unknown_name_suggests_close_matches(self):
        with pytest.raises(
            UseCaseNotFoundError, match="unknown use case 'chrun': did you mean churn"
        ):
            load_usecase("chrun")

    def test_spec_is_loaded_from_a_path(self, tmp_path):
        path = _write(tmp_path / "returns.yaml", MINIMAL)
        assert load_usecase(str(path)).name == "returns"

    def test_a_use_case_folder_loads_its_usecase_yaml(self, tmp_path):
        _write(tmp_path / "usecase.yaml", MINIMAL)
        assert load_usecase(str(tmp_path)).name == "returns"

    @pytest.mark.parametrize(
        ("reference", "label"),
        [
            ("churn", "churn"),
            ("specs/returns.yaml", "returns"),
            ("/work/usecases/quality/usecase.yaml", "quality"),
            ("usecases/fraud/", "fraud"),
        ],
    )
    def test_a_reference_is_labelled_by_its_use_case(self, reference, label):
        assert discovery.usecase_label(reference) == label

    def test_a_folder_without_a_spec_is_named(self, tmp_path):
        with pytest.raises(SpecError, match=r"usecase.yaml: use-case spec not found"):
            load_usecase(str(tmp_path))

    def test_installed_plugin_is_found_through_entry_points(
        self, tmp_path, monkeypatch
    ):
        _write(tmp_path / "returns.yaml", MINIMAL)
        package = tmp_path / "returns_plugin.py"
        package.write_text(
            "from pathlib import Path\nSPEC = Path(__file__).with_name('returns.yaml')\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        plugin = EntryPoint(
            name="returns",
            value="returns_plugin:SPEC",
            group=discovery.ENTRY_POINT_GROUP,
        )
        monkeypatch.setattr(discovery, "entry_points", lambda group: [plugin])

        assert load_usecase("returns").target.column == "returned"
        sys.modules.pop("returns_plugin", None)

    def test_broken_plugin_does_not_hide_the_others(self, monkeypatch):
        broken = EntryPoint(
            name="broken",
            value="no_such_module:SPEC",
            group=discovery.ENTRY_POINT_GROUP,
        )
        monkeypatch.setattr(discovery, "entry_points", lambda group: [broken])
        assert "broken" not in available_usecases()
        assert "churn" in available_usecases()
