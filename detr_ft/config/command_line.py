"""The one shape of every entry point: `@hydra_app("predict")` is Hydra's `@hydra.main` over conf/predict.yaml,
plus what Hydra does not say when an override names a key that does not exist: which keys do (and the nearest
one), at the level where the name went wrong."""

import difflib
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from detr_ft.config.plain_errors import reported_plainly
from detr_ft.config.schema import config_dir

_FLAGS_WITH_A_VALUE = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--info", "-i"}
MAX_LISTED = 40


def hydra_app(config_name: str) -> Callable:
    """`@hydra.main(config_name=...)` over detr_ft's conf/; a command that fails on an unknown key also lists the
    valid keys there (tests pass a composed config straight to the task, as with Hydra's own decorator)."""

    def decorate(task: Callable) -> Callable:
        plain = functools.wraps(task)(reported_plainly(task))  # a user's mistake: its one line, no traceback
        hydra_main = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(plain)

        @functools.wraps(task)
        def main(*args: Any, **kwargs: Any) -> Any:
            if not args and not kwargs and _checks_keys_first(sys.argv[1:]):
                _exit_on_unknown_keys(config_name, sys.argv[1:])  # before Hydra's message, a sweep's parent run
            try:
                return hydra_main(*args, **kwargs)
            except SystemExit as exit:
                if exit.code not in (0, None) and not args and not kwargs:
                    for line in unknown_key_messages(config_name, sys.argv[1:]):
                        print(line, file=sys.stderr)
                raise

        return main

    return decorate


def _checks_keys_first(argv: list[str]) -> bool:
    """A command over conf/ as shipped (another config file may hold keys the built-in one lacks): a misspelt key
    then prints only our line (HYDRA_FULL_ERROR=1 leaves it to Hydra's, with its traceback)."""
    config_flags = _FLAGS_WITH_A_VALUE - {"--info", "-i"}
    if any(word.split("=")[0] in config_flags for word in argv) or os.environ.get("HYDRA_FULL_ERROR") == "1":
        return False
    if {"--multirun", "-m"} & set(argv):
        return True
    return bool(_overrides(argv)) and not any(word.startswith("-") for word in argv)


def _exit_on_unknown_keys(config_name: str, argv: list[str]) -> None:
    messages = unknown_key_messages(config_name, argv)
    for line in messages:
        print(line, file=sys.stderr)
    if messages:
        sys.exit(1)


def _overrides(argv: list[str]) -> list[str]:
    """The KEY=VALUE words of a command line (flags and their values left out)."""
    words, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in _FLAGS_WITH_A_VALUE
        else:
            words.append(word)
    return words


def unknown_key_messages(config_name: str, argv: list[str]) -> list[str]:
    """For each override of a key the composed config lacks: the valid keys at the level where it went wrong."""
    try:
        parsed = OverridesParser.create().parse_overrides(_overrides(argv))
    except Exception:  # Hydra has already named a grammar error
        return []
    groups, values = [], []
    for override in parsed:
        key = override.key_or_group
        if override.is_add() or override.is_delete() or key.startswith("hydra"):
            continue
        is_group = (config_dir() / key).is_dir()
        (groups if is_group else values).append(override.input_line if is_group else key)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            config = OmegaConf.to_container(compose(config_name, overrides=groups), resolve=False)
    except Exception:  # a bad group option: Hydra's own message names it and its options
        return []
    finally:
        GlobalHydra.instance().clear()
    return [message for key in values if (message := _unknown(config, key))]


def _unknown(config: dict, key: str) -> str | None:
    node, path = config, []
    for part in key.split("."):
        if not isinstance(node, dict):
            return None  # a list index or a value: not a key question
        if part not in node:
            where = ".".join(path) or "the top level"
            valid = sorted(str(name) for name in node)
            nearest = difflib.get_close_matches(part, valid, n=1)
            hint = f" (did you mean {'.'.join([*path, nearest[0]])}?)" if nearest else ""
            shown = ", ".join(valid[:MAX_LISTED]) + (" ..." if len(valid) > MAX_LISTED else "")
            return f"error: {key}: {where} has no key {part!r}{hint}. Valid keys under {where}: {shown}"
        node, path = node[part], [*path, part]
    return None
