"""Imports only go down: every `detr_ft` import, read with `ast`, goes from a layer to the same layer or one below
it, in the order docs/layout.md shows (its `layers` block, top to bottom)."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def layers() -> list[list[str]]:
    """docs/layout.md's layers block -> per layer, its module prefixes (`training`, `checkpoints.safe_read`)."""
    text = (REPO / "docs" / "layout.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S).group(1)
    rows = [line.split(":", 1)[-1].split() for line in block.splitlines() if line.strip()]
    return [[name.strip("/").replace("/", ".") for name in row] for row in rows]


def layer_of(module: str, order: list[list[str]]) -> int:
    """The layer of the longest prefix that names `module` (`detr_ft.training.loop.module` -> training)."""
    name = module.removeprefix("detr_ft.")
    matches = [(len(p), i) for i, row in enumerate(order) for p in row if name == p or name.startswith(p + ".")]
    assert matches, f"docs/layout.md's layers block does not place {module}"
    return max(matches)[1]


def imports(path: Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("detr_ft"):
            names = [f"{node.module}.{a.name}" for a in node.names]  # `from detr_ft import tracking` is a module
            found |= {n for n in names if _is_module(n)} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("detr_ft")}
    return found - {"detr_ft"}


def _is_module(dotted: str) -> bool:
    base = REPO / Path(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((REPO / "detr_ft").rglob("*.py")):
        dotted = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        found[dotted] = path
    return found


def test_every_import_in_detr_ft_goes_down_the_layers_docs_layout_shows():
    order = layers()
    upward = []
    for module, path in modules().items():
        if module == "detr_ft":
            continue
        own = layer_of(module, order)
        for imported in imports(path, module):
            if layer_of(imported, order) < own:
                upward.append(f"{module} imports {imported}")
    assert not upward, "imports that go up a layer:\n" + "\n".join(sorted(upward))


def test_the_check_sees_an_upward_import():
    order = layers()
    assert layer_of("detr_ft.checkpoints.checkpoint_file", order) < layer_of("detr_ft.model.backbone", order)
    assert layer_of("detr_ft.checkpoints.safe_read", order) > layer_of("detr_ft.model.backbone", order)
    assert layer_of("detr_ft.train", order) < layer_of("detr_ft.training.loop.module", order)
