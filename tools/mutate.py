"""Mutation testing: break one promise of the code on purpose and check that the tests notice.

For each mutation of tools/mutations.py: copy the repository (git-tracked + untracked-not-ignored files)
into a temp dir, apply that one edit, run pytest there, and record whether the tests failed (killed) or
passed (survived). A survivor is a promise no test holds.

    python -m tools.mutate [--only NAME ...] [--list] [--tests PATH ...] [--timeout S] [--report [PATH]] [--baseline]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from tools.mutations import MUTATIONS, Mutation

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REPORT = "tools/mutation_report.json"
KILLED = ("killed", "timeout")  # a mutant that hangs the tests is caught too
PARALLEL = ["-n", "auto", "--dist", "loadfile"]  # pytest-xdist, as `make test`


@dataclass
class Result:
    name: str
    status: str  # killed | survived | timeout | not applied | error
    detail: str  # the first failing test, or why it did not run
    seconds: float


@dataclass
class Session:
    """What every mutant of one run shares: a snapshot of the repository and the tests to leave out."""

    snapshot: Path
    timeout: float
    deselect: list[str] = field(default_factory=list)  # tests that already fail unmutated


# ---- copies -------------------------------------------------------------------------------------


def repo_files(repo: Path) -> list[str]:
    """What a fresh checkout plus the work in progress holds: tracked and untracked-not-ignored files."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in out.split("\0") if name and os.path.lexists(repo / name)]  # skips deleted files


def take_snapshot(repo: Path) -> Path:
    """One copy at the start, so every mutant sees the same tests even while others edit the repository."""
    root = Path(tempfile.mkdtemp(prefix="detr_ft_snapshot_"))
    for name in repo_files(repo):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, root / name, follow_symlinks=False)  # conf/experiment is a link
    borrow_git(root)
    return root


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def borrow_git(root: Path) -> None:
    """A .git of the copy's own at the repository's HEAD, reading the repository's objects (never writing
    them), so a run tagged with `git rev-parse HEAD` sees the same commit as in the checkout."""
    git("init", "-q", str(root))
    objects = Path(git("rev-parse", "--path-format=absolute", "--git-common-dir")) / "objects"
    (root / ".git" / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    git("update-ref", "HEAD", git("rev-parse", "HEAD"), cwd=root)
    git("read-tree", "HEAD", cwd=root)  # an index like the checkout's, so `git status` shows only local edits


def clone(snapshot: Path) -> Path:
    """A throwaway copy of the snapshot (real copies, never links: a mutation must reach no other copy)."""
    root = Path(tempfile.mkdtemp(prefix="detr_ft_mutant_"))
    shutil.copytree(snapshot, root, symlinks=True, dirs_exist_ok=True)
    return root


def apply_mutation(root: Path, mutation: Mutation) -> str | None:
    """Edit the copy; returns None, or why the mutation does not apply (the snippet must occur once)."""
    path = root / mutation.file
    if not path.is_file():
        return f"{mutation.file} not found"
    text = path.read_text()
    count = text.count(mutation.original)
    if count != 1:
        return f"does not apply: snippet found {count} times in {mutation.file}"
    mutated = text.replace(mutation.original, mutation.replacement)
    problem = unparsable(mutation.file, mutated)
    if problem:  # a mutant that does not even compile is killed by any import: it would prove nothing
        return f"does not apply: the mutated {mutation.file} no longer parses ({problem}); fix the snippet"
    path.write_text(mutated)
    return None


def unparsable(name: str, text: str) -> str | None:
    """Why a mutated Python or YAML file cannot be read (e.g. a snippet indented for another block), or None."""
    try:
        if name.endswith(".py"):
            compile(text, name, "exec")
        elif name.endswith((".yaml", ".yml")):
            yaml.safe_load(text)
    except (SyntaxError, yaml.YAMLError) as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return None


# ---- running pytest -----------------------------------------------------------------------------


def mutant_env(root: Path) -> dict[str, str]:
    """PYTHONPATH first, so pytest and the CLI subprocesses it starts import the copy, not the editable install."""
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def imports_the_copy(root: Path) -> bool:
    """Checked from another folder, as the CLI tests run `python -m detr_ft`."""
    code = "import detr_ft, sys; sys.stdout.write(detr_ft.__file__)"
    env, cwd = mutant_env(root), tempfile.gettempdir()
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    return out.stdout.startswith(str(root))


def run_pytest(root: Path, args: list[str], timeout: float) -> tuple[int | None, str]:
    """(exit code or None on timeout, output). Its own process group, so a timeout also ends CLI children.
    In parallel as `make test` runs (one worker per core, a test file's tests on one worker)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PARALLEL, *args]
    process = subprocess.Popen(
        command,
        cwd=root,
        env=mutant_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return None, process.communicate()[0]
    except BaseException:  # Ctrl-C or SIGTERM: the tests must not outlive us
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return process.returncode, output


def failures(output: str) -> list[str]:
    """Test ids of pytest's FAILED/ERROR summary lines."""
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)


def classify(code: int | None, output: str) -> tuple[str, str]:
    """pytest's exit code -> (status, detail). 4 (usage) and 5 (nothing collected) say nothing of the mutant."""
    if code is None:
        return "timeout", "tests ran past the timeout (counted as killed)"
    if code == 0:
        return "survived", ""
    lines = [line for line in output.splitlines() if line.strip()]
    detail = (failures(output) or lines[-1:] or ["(no output)"])[0]
    return ("error", f"pytest exit {code}: {detail}") if code in (4, 5) else ("killed", detail)


def run_mutant(session: Session, mutation: Mutation, tests: list[str]) -> Result:
    """One mutant in its own copy, deleted afterwards; -x: the first failing test is enough."""
    start, root = time.monotonic(), clone(session.snapshot)
    try:
        problem = apply_mutation(root, mutation)
        if problem:
            return Result(mutation.name, "not applied", problem, 0.0)
        if not imports_the_copy(root):
            return Result(mutation.name, "error", "the copy's detr_ft is not the one imported", 0.0)
        deselect = [arg for test in session.deselect for arg in ("--deselect", test)]
        status, detail = classify(*run_pytest(root, ["-x", *deselect, *tests], session.timeout))
        return Result(mutation.name, status, detail, round(time.monotonic() - start, 1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_baseline(session: Session, tests: list[str]) -> bool:
    """The unmutated tests, all of them (no -x): those that fail already are left out of every mutant's
    run, since they would count as kills. False when the tests cannot run at all (e.g. collection errors)."""
    start, root = time.monotonic(), clone(session.snapshot)  # a clone: tests may write into the repository
    try:
        code, output = run_pytest(root, tests, session.timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    session.deselect = failures(output) if code == 1 else []
    print(f"baseline ({' '.join(tests)}): exit {code} in {time.monotonic() - start:.0f} s", flush=True)
    for test in session.deselect:
        print(f"  fails unmutated, left out of every mutant's run: {test}")
    if code not in (0, 1):
        print(output[-3000:])
    return code in (0, 1)


# ---- selection and reporting --------------------------------------------------------------------


def select(names: list[str] | None) -> list[Mutation]:
    if not names:
        return list(MUTATIONS)
    known = {m.name: m for m in MUTATIONS}
    unknown = sorted(set(names) - set(known))
    if unknown:
        sys.exit(f"unknown mutation(s) {unknown}; see --list")
    return [known[name] for name in names]


def print_list(mutations: list[Mutation]) -> None:
    """Each mutation, whether it applies to the working tree now, and what it breaks."""
    for m in mutations:
        text = (REPO / m.file).read_text() if (REPO / m.file).is_file() else ""
        count = text.count(m.original)
        broken = count == 1 and unparsable(m.file, text.replace(m.original, m.replacement))
        state = f"DOES NOT APPLY ({count} matches)" if count != 1 else f"DOES NOT PARSE ({broken})" if broken else "ok"
        print(f"{m.name:<32} {m.file:<30} {state}  tests: {' '.join(m.tests)}\n    breaks: {m.breaks}")


def score_line(results: list[Result]) -> str:
    applied = [r for r in results if r.status in (*KILLED, "survived")]
    killed = sum(r.status in KILLED for r in applied)
    percent = f"{100 * killed / len(applied):.0f}%" if applied else "n/a"
    return f"score: {killed}/{len(applied)} killed ({percent}); {len(results) - len(applied)} not applied or errored"


def print_table(results: list[Result]) -> None:
    width = max([len(r.name) for r in results] + [8])
    print(f"\n{'mutation':<{width}}  {'status':<11}  {'seconds':>7}  killing test / note")
    for r in results:
        print(f"{r.name:<{width}}  {r.status:<11}  {r.seconds:>7.1f}  {r.detail}")
    print(score_line(results))


def git_state() -> dict[str, str]:
    """The commit and the uncommitted changes the snapshot was taken with (others may be editing the tests)."""
    return {"commit": git("rev-parse", "HEAD"), "status": git("--no-optional-locks", "status", "--short")}


def write_report(path: Path, state: dict, session: Session, results: list[Result], seconds: float) -> None:
    report = {
        **state,
        "deselected_baseline_failures": session.deselect,
        "seconds": round(seconds),
        "score": score_line(results),
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report written to {path}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.mutate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    parser.add_argument("--list", action="store_true", help="list the mutations and whether they apply")
    parser.add_argument("--tests", nargs="+", metavar="PATH", help="test paths for every mutant (default: its own)")
    parser.add_argument("--timeout", type=float, default=900, metavar="S", help="seconds per mutant (default 900)")
    parser.add_argument(
        "--report",
        nargs="?",
        const=DEFAULT_REPORT,
        metavar="PATH",
        help=f"write JSON results (default {DEFAULT_REPORT})",
    )
    parser.add_argument(
        "--baseline", action="store_true", help="run the tests unmutated first; leave out those that already fail"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the temp dirs are still deleted
    mutations = select(args.only)
    if args.list:
        print_list(mutations)
        return 0
    start, state = time.monotonic(), git_state()
    print(f"commit {state['commit']}; uncommitted changes:\n{state['status'] or 'none'}")
    session, results = Session(take_snapshot(REPO), args.timeout), []
    try:
        union = args.tests or sorted({path for m in mutations for path in m.tests})
        if args.baseline and not run_baseline(session, union):
            return 2
        for index, mutation in enumerate(mutations, 1):
            results.append(run_mutant(session, mutation, args.tests or list(mutation.tests)))
            print(
                f"[{index}/{len(mutations)}] {results[-1].name}: {results[-1].status} {results[-1].detail}", flush=True
            )
    finally:
        shutil.rmtree(session.snapshot, ignore_errors=True)
    print_table(results)
    print(f"took {time.monotonic() - start:.0f} s")
    if args.report:
        write_report(Path(args.report), state, session, results, time.monotonic() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
