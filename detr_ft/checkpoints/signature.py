"""What a file that torch cannot load is, told from its first bytes: so an empty file, a text file or random
bytes are reported as "not a checkpoint", and only a real pickle that holds code gets the refusal that says so."""

import zipfile
from pathlib import Path


def not_a_checkpoint(path: Path) -> str | None:
    """Why the file cannot be a torch checkpoint at all, from its first bytes (None: it may be one)."""
    with path.open("rb") as file:
        head = file.read(4)
    if not head:
        return "the file is empty"
    if head == b"PK\x03\x04":  # torch.save's zip format
        if not zipfile.is_zipfile(path):
            return "a zip file that is truncated or damaged"
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("data.pkl") for name in archive.namelist()):
                return "a zip file that torch.save did not write (no data.pkl inside)"
        return None
    if head[:1] == b"\x80":  # a pickle: torch's legacy format
        return None
    return f"neither torch's zip format nor a pickle; it starts with {head!r}"


def pickled_code(path: Path) -> str | None:
    """The first callable a legacy pickle (or a zip's data.pkl) would import or call when loaded, read from its
    opcodes without running anything (None: it names none). Such a file is refused, never loaded."""
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(name) if name else b""
        else:
            data = path.read_bytes()
        strings: list[str] = []
        for opcode, argument, _ in pickletools.genops(data):
            if isinstance(argument, str):
                strings.append(argument)
            if opcode.name == "GLOBAL":
                return str(argument).replace(" ", ".")
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
    except Exception:  # not a readable pickle: no code can be named
        return None
    return None
