"""The house stays walkable: no module in detr_ft/ over 200 lines, no folder over 12 modules (docs/layout.md)."""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "detr_ft"
MAX_LINES, MAX_MODULES = 200, 12


def test_no_module_is_over_200_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_folder_holds_more_than_12_modules():
    folders = {p.parent for p in PACKAGE.rglob("*.py")}
    crowded = {
        str(folder.relative_to(PACKAGE.parent)): count
        for folder in folders
        if (count := sum(1 for p in folder.glob("*.py") if p.name != "__init__.py")) > MAX_MODULES
    }
    assert not crowded, f"folders over {MAX_MODULES} modules: {crowded}"
