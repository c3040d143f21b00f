"""The suite's two tiers. A test that starts a Python process (the CLI run end to end, a spawned interpreter)
pays seconds of start-up for each one: it is `slow`, and `make test-fast` leaves it out.

Nobody has to write the marker: at collection a test is marked slow when its function, one of its fixtures, or a
function of tests/ that they call names `sys.executable` (the interpreter `run_cli` starts) or a multiprocessing
start method that starts one (`spawn`, `forkserver`). The tiers cannot drift either: a test left unmarked that
starts a new Python interpreter anyway (from code the scan cannot see) fails, naming the command.
`light_process` lets a test start interpreters that import no torch (about a second) and stay fast.
Processes that are not Python (git) and forked workers (a DataLoader's) start in milliseconds and are allowed.
"""

import inspect
import multiprocessing
import multiprocessing.process
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import CodeType

import pytest

TESTS = Path(__file__).resolve().parent
STARTERS = {"executable", "spawn", "forkserver"}  # names and strings of code that starts a Python interpreter
EXEMPT = ("slow", "light_process")


def _names(code: CodeType) -> set[str]:
    """The global and attribute names and the strings a code object uses, its nested functions' included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _names(const)
        elif isinstance(const, str):
            names.add(const)
    return names


def starts_processes(function: Callable, seen: set[CodeType] | None = None) -> bool:
    """Whether `function`, or a function of its own module or of tests/ that it calls (followed through the
    module's globals), names a process starter."""
    function = inspect.unwrap(getattr(function, "__func__", function))
    code, seen = getattr(function, "__code__", None), seen if seen is not None else set()
    if code is None or code in seen:
        return False
    seen.add(code)
    names = _names(code)
    if names & STARTERS:
        return True
    called = (function.__globals__.get(name) for name in names)
    return any(inspect.isfunction(f) and _ours(f, function) and starts_processes(f, seen) for f in called)


def _ours(called: Callable, caller: Callable) -> bool:
    """A test's helper (not library code, which the run-time guard covers)."""
    return called.__module__ == caller.__module__ or TESTS in Path(inspect.getfile(called)).resolve().parents


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that start processes slow, and put the files holding them first: in parallel the longest
    work then starts first and the short tests fill the gaps at the end (the order within a file is kept)."""
    for item in items:
        if not isinstance(item, pytest.Function) or any(item.get_closest_marker(name) for name in EXEMPT):
            continue
        fixtures = [defs[-1].func for defs in item._fixtureinfo.name2fixturedefs.values() if defs]
        if any(starts_processes(function) for function in [item.function, *fixtures]):
            item.add_marker(pytest.mark.slow)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


class StartsAPythonProcess(Exception):
    """Raised where an unmarked test starts a Python interpreter (and reported again after the test)."""


def _python_command(args: tuple, kwargs: dict) -> str | None:
    """The command line `subprocess.Popen(*args, **kwargs)` would run, when its program is a Python interpreter."""
    command = args[0] if args else kwargs.get("args", "")
    if isinstance(command, str | bytes):
        command = str(command if isinstance(command, str) else command.decode())
        words = shlex.split(command) if kwargs.get("shell") else [command]
    else:
        words = [str(word) for word in command]
    program = Path(str(kwargs.get("executable") or (words or [""])[0]))
    is_python = program.name.startswith("python") or program.resolve() == Path(sys.executable).resolve()
    return " ".join(words)[:300] if is_python else None


def _start_method(process: multiprocessing.process.BaseProcess) -> str:
    try:
        return multiprocessing.get_context(process._start_method).get_start_method()
    except ValueError:  # a method multiprocessing does not know (loky's): a fresh interpreter
        return str(process._start_method)


@contextmanager
def _guarded(item: pytest.Item) -> Iterator[list[str]]:
    """While `item` runs unmarked: a Python interpreter started by subprocess or multiprocessing raises, and is
    listed in what this yields."""
    started: list[str] = []
    if any(item.get_closest_marker(name) for name in EXEMPT):
        yield started
        return
    real_popen, real_start = subprocess.Popen.__init__, multiprocessing.process.BaseProcess.start

    def refuse(what: str) -> None:
        started.append(what)
        raise StartsAPythonProcess(
            f"{item.nodeid} starts a Python process ({what}) but is not marked slow: mark it "
            "@pytest.mark.slow (tests/tiers.py), or keep the fast tier free of processes"
        )

    def popen(self, *args, **kwargs):
        command = _python_command(args, kwargs)
        if command:
            refuse(command)
        real_popen(self, *args, **kwargs)

    def start(self):
        method = _start_method(self)
        if method != "fork":  # spawn and forkserver start a fresh interpreter
            refuse(f"multiprocessing ({method}) {self.name}")
        real_start(self)

    subprocess.Popen.__init__, multiprocessing.process.BaseProcess.start = popen, start
    try:
        yield started
    finally:
        subprocess.Popen.__init__, multiprocessing.process.BaseProcess.start = real_popen, real_start


def _run_guarded(item: pytest.Item):
    with _guarded(item) as started:
        result = yield
    if started:
        pytest.fail(f"{item.nodeid} is not marked slow but started {len(started)} Python process(es): {started[0]}")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    return (yield from _run_guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _run_guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item):
    return (yield from _run_guarded(item))
