"""Hooks a spec names: broken files and failing functions end in one clear error."""

from __future__ import annotations

import pandas as pd
import pytest

from casework.errors import DataError, SpecError
from casework.usecases.hooks import load_callable


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
