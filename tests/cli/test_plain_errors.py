"""A user's mistake ends the command with its one clear line and exit code 1, not Hydra's traceback above it;
HYDRA_FULL_ERROR=1 still shows the traceback. A bug (any other error) keeps its traceback."""

import os

import pytest

from detr_ft.config.errors import ConfigError
from detr_ft.config.plain_errors import plain_error
from detr_ft.data.images import BadImageError
from tests.conftest import TINY_OVERRIDES, run_cli


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("model.num_queries=0", "Error: model settings out of range:"),
        ("train.learning_rate=-1", "Error: train.learning_rate must be >= 0"),
        ("train.lerning_rate=1", "error: train.lerning_rate: train has no key 'lerning_rate' (did you mean"),
    ],
)
def test_a_config_mistake_prints_only_its_clear_line(tmp_path, override, line):
    result = run_cli(["-m", "detr_ft", *TINY_OVERRIDES, override], cwd=tmp_path)
    assert result.returncode == 1
    assert _lines(result.stderr)[0].startswith(line), result.stderr
    assert "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr, result.stderr
    assert len(_lines(result.stderr)) <= 2, result.stderr  # model.*: the heading and one line per bad key


def test_hydra_full_error_still_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    result = run_cli(["-m", "detr_ft", *TINY_OVERRIDES, "train.learning_rate=-1"], cwd=tmp_path)
    assert result.returncode == 1 and os.environ["HYDRA_FULL_ERROR"] == "1"
    assert "Traceback" in result.stderr and "ConfigError: train.learning_rate must be >= 0" in result.stderr


def test_the_mistake_is_found_behind_the_errors_that_wrap_it():
    try:
        try:
            raise BadImageError("images/3.png cannot be decoded")
        except BadImageError as error:
            raise RuntimeError("Error in call to target") from error  # as hydra.utils.instantiate wraps it
    except RuntimeError as wrapped:
        assert str(plain_error(wrapped)) == "images/3.png cannot be decoded"
    assert isinstance(plain_error(ConfigError("x")), ConfigError)
    assert plain_error(ZeroDivisionError("a bug")) is None
