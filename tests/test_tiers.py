"""The tiers hold by themselves (tests/tiers.py): a test that starts a Python interpreter is slow without anyone
writing the marker, and one that starts it where the scan cannot see fails instead of slowing the fast tier."""

import pytest

pytest_plugins = ("pytester",)

TESTS = """
import shutil
import subprocess
import sys

import pytest


def python_in_a_helper_of_tests():
    return subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_starts_python():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_starts_python_through_a_helper():
    python_in_a_helper_of_tests()


def test_starts_python_out_of_the_scans_sight():
    subprocess.run([shutil.which("python3"), "-c", "pass"], check=True)


def test_starts_python_out_of_sight_and_swallows_the_error():
    try:
        subprocess.run([shutil.which("python3"), "-c", "pass"], check=True)
    except Exception:
        pass


def test_runs_git_and_forks():
    import multiprocessing

    subprocess.run(["git", "--version"], check=True, capture_output=True)
    worker = multiprocessing.get_context("fork").Process(target=print)
    worker.start()
    worker.join()


@pytest.mark.light_process
def test_light_process():
    subprocess.run([shutil.which("python3"), "-c", "pass"], check=True)
"""


@pytest.fixture
def suite(pytester):
    hooks = "pytest_collection_modifyitems, pytest_runtest_call, pytest_runtest_setup, pytest_runtest_teardown"
    pytester.makeconftest(f"from tests.tiers import {hooks}  # noqa: F401")
    pytester.makeini("[pytest]\naddopts = --strict-markers\nmarkers =\n    slow: s\n    light_process: l\n")
    pytester.makepyfile(test_inner=TESTS)
    return pytester


@pytest.mark.light_process  # the inner tests start `python -c pass` (milliseconds)
def test_starting_python_marks_a_test_slow_and_out_of_sight_fails_loudly(suite):
    every = suite.runpytest_inprocess("-p", "no:cacheprovider", "-rf")
    every.assert_outcomes(passed=4, failed=2)
    every.stdout.fnmatch_lines(["*test_starts_python_out_of_the_scans_sight starts a Python process*not marked slow*"])
    every.stdout.fnmatch_lines(["*_swallows_the_error is not marked slow but started 1 Python process*"])

    fast = suite.runpytest_inprocess("-p", "no:cacheprovider", "-m", "not slow", "-rf")
    fast.assert_outcomes(passed=2, failed=2, deselected=2)  # the two the scan sees are slow
