"""Hooks a spec names: broken files and failing functions end in one clear error."""

from __future__ import annotations

import pandas as pd
import pytest

from casework.errors import DataError, SpecError
from casework.usecases.hooks import load_callable
from tests.helpers import run_casework, write_usecase


class TestLoadCallable:
    def test_a_hook_file_with_a_syntax_error_is_named(self, tmp_path):
        (tmp_path / "broken.py").write_text("def add(frame)\n    return frame\n")
        with pytest.raises(SpecError, match=r"broken.py cannot be loaded: SyntaxError"):
            load_callable("broken.py:add", tmp_path)

    def test_a_hook_file_importing_a_missing_module_is_named(self, tmp_path):
        (tmp_path / "needs.py").write_text("import no_such_module_xyz\n")
        with pytest.raises(SpecError, match=r"ModuleNotFoundError: No module named"):
            load_callable("needs.py:add", tmp_path)

    def test_a_missing_function_is_named(self, tmp_path):
        (tmp_path / "fine.py").write_text("def other(frame):\n    return frame\n")
        with pytest.raises(SpecError, match=r"has no function 'add'"):
            load_callable("fine.py:add", tmp_path)


class TestFeaturesHookOnTrainingRows:
    def _spec(self, tmp_path, body: str):
        from casework.usecases.spec import UseCaseSpec

        (tmp_path / "feat.py").write_text(body)
        spec = UseCaseSpec.model_validate(
            {
                "name": "demo",
                "source": {"kind": "csv", "path": "x.csv"},
                "target": {"column": "y"},
                "hooks": {"features": "feat.py:add"},
            }
        )
        spec._spec_path = tmp_path / "usecase.yaml"
        return spec

    def test_a_hook_that_raises_is_one_error_naming_it(self, tmp_path):
        from casework.flows.train import _apply_features_hook

        spec = self._spec(tmp_path, "def add(frame):\n    raise ValueError('boom')\n")
        hook = load_callable("feat.py:add", tmp_path)
        with pytest.raises(DataError, match=r"'feat.py:add' failed .*ValueError: boom"):
            _apply_features_hook(hook, pd.DataFrame({"a": [1]}), spec)

    def test_a_hook_that_returns_no_frame_is_refused(self, tmp_path):
        from casework.flows.train import _apply_features_hook

        spec = self._spec(tmp_path, "def add(frame):\n    return None\n")
        hook = load_callable("feat.py:add", tmp_path)
        with pytest.raises(
            DataError, match=r"returned NoneType, expected a pandas DataFrame"
        ):
            _apply_features_hook(hook, pd.DataFrame({"a": [1]}), spec)

    def test_a_hook_that_drops_rows_is_refused(self, tmp_path):
        from casework.flows.train import _apply_features_hook

        spec = self._spec(tmp_path, "def add(frame):\n    return frame.head(1)\n")
        hook = load_callable("feat.py:add", tmp_path)
        with pytest.raises(DataError, match=r"returned 1 rows for 3; a features hook"):
            _apply_features_hook(hook, pd.DataFrame({"a": [1, 2, 3]}), spec)

    def test_a_hook_that_exits_the_process_is_one_error(self, tmp_path):
        from casework.flows.train import _apply_features_hook

        spec = self._spec(tmp_path, "import sys\ndef add(frame):\n    sys.exit(3)\n")
        hook = load_callable("feat.py:add", tmp_path)
        with pytest.raises(DataError, match=r"failed on the training rows: SystemExit"):
            _apply_features_hook(hook, pd.DataFrame({"a": [1]}), spec)


class TestPythonSource:
    def test_a_source_function_that_raises_is_one_error_naming_it(self, tmp_path):
        from casework.tasks.ingest import ingest
        from casework.usecases.spec import UseCaseSpec

        (tmp_path / "load.py").write_text("def rows():\n    raise OSError('db down')\n")
        spec = UseCaseSpec.model_validate(
            {
                "name": "demo",
                "source": {"kind": "python", "callable": "load.py:rows"},
                "target": {"column": "y"},
            }
        )
        spec._spec_path = tmp_path / "usecase.yaml"

        with pytest.raises(DataError) as raised:
            ingest.fn(spec)
        assert (
            str(raised.value) == "source python:load.py:rows failed: OSError: db down"
        )


class TestPrepareHookOnRawRows:
    def _spec(self, tmp_path, body: str):
        from casework.usecases import load_spec

        (tmp_path / "prep.py").write_text(body)
        frame = pd.DataFrame({"a": [1, 2, 3, 4], "y": [0, 1, 0, 1]})
        path = write_usecase(
            tmp_path,
            "demo",
            frame,
            target={"column": "y"},
            hooks={"prepare": "prep.py:fix"},
        )
        return load_spec(path)

    def test_a_hook_that_raises_is_one_error_naming_it(self, tmp_path):
        from casework.tasks.ingest import ingest

        spec = self._spec(tmp_path, "def fix(frame):\n    return frame['nope']\n")
        with pytest.raises(DataError) as raised:
            ingest.fn(spec)
        assert str(raised.value) == (
            "hook 'prep.py:fix' failed on the raw rows: KeyError: 'nope'"
        )

    def test_a_hook_raising_a_data_error_keeps_its_message(self, tmp_path):
        from casework.tasks.ingest import ingest

        body = (
            "from casework.errors import DataError\n"
            "def fix(frame):\n"
            "    raise DataError('demo: column b is missing; export it too')\n"
        )
        spec = self._spec(tmp_path, body)
        with pytest.raises(DataError) as raised:
            ingest.fn(spec)
        assert str(raised.value) == "demo: column b is missing; export it too"

    def test_casework_run_reports_a_failing_hook_in_one_line(self, tmp_path):
        spec = self._spec(tmp_path, "def fix(frame):\n    return 1 / 0\n")

        completed = run_casework("run", str(spec.spec_path), home=tmp_path)

        assert completed.returncode == 1
        assert completed.stderr.endswith(
            "error: hook 'prep.py:fix' failed on the raw rows: "
            "ZeroDivisionError: division by zero\n"
        )
        assert "Traceback" not in completed.stdout + completed.stderr
