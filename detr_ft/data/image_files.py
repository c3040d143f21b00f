"""Cheap up-front checks of one image file: it exists, its header names an image format, it is not cut
short, and the size a viewer shows (EXIF rotation applied) is the one the annotation file gives.

PIL.Image.open reads only the header (the pixels are decoded on first access, which never happens here),
so checking every image of a split costs a file open each, not a decode. A truncated file is found by its
missing end marker (JPEG's EOI, PNG's IEND chunk), read from the file's last bytes; a damaged PNG by its
chunk checksums (PIL's verify reads the file, without decompressing it).
"""

import os
from pathlib import Path, PurePath

from PIL import Image, UnidentifiedImageError

EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # rotated by 90 or 270 degrees: a viewer swaps width and height
TAIL_BYTES = 1024  # where an end marker is looked for; cameras may pad after JPEG's EOI
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
# CORRUPT_PNG_NOTE: torchvision 0.29's PNG decoder crashes the process (segmentation fault, no message) on
# compressed data libpng rejects; a PNG's chunk checksums find a damaged file before it gets there.


def escapes_folder(images_dir: Path, file_name: str) -> bool:
    """True when `file_name` is absolute or climbs (`../`) out of `images_dir` (symlinks are not followed)."""
    if PurePath(file_name).is_absolute():
        return True
    folder = os.path.normpath(images_dir)
    return os.path.commonpath([folder, os.path.normpath(os.path.join(folder, file_name))]) != folder


def _is_truncated(file, size: int, image_format: str | None) -> bool:
    """`file`: the image's open binary file (PIL's, read position restored), `size` its length in bytes."""
    marker = END_MARKERS.get(image_format or "")
    if marker is None:
        return False
    position = file.tell()
    file.seek(max(0, size - TAIL_BYTES))
    truncated = marker not in file.read()
    file.seek(position)
    return truncated


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation tag from what the header holds (PIL's PngImageFile.getexif decodes the pixels to
    find an eXIf chunk after them: only one before them is read here)."""
    if image.format == "PNG":
        exif = Image.Exif()
        exif.load(image.info.get("exif") or b"")
        return exif.get(EXIF_ORIENTATION)
    return image.getexif().get(EXIF_ORIENTATION)


def displayed_size(path: Path) -> tuple[int, int]:
    """(width, height) as a viewer shows the image, from its header; raises OSError naming the fault."""
    try:
        size = path.stat().st_size
    except OSError:
        size = None
    if size is None or not path.is_file():
        raise OSError("is missing")
    if size == 0:
        raise OSError("is empty (0 bytes)")
    try:
        with path.open("rb") as file, Image.open(file) as image:
            width, height = image.size
            image_format = image.format
            orientation = _orientation(image)
            truncated = _is_truncated(file, size, image_format)
            if image_format == "PNG" and not truncated:
                image.verify()  # chunk checksums, read but not decompressed: see CORRUPT_PNG_NOTE
    except UnidentifiedImageError:
        raise OSError("is not an image file (no image format recognises its header)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise OSError(f"is damaged or has an unreadable header ({error})") from None
    if truncated:
        raise OSError(f"is truncated (its {image_format} end marker is missing)")
    return (height, width) if orientation in TRANSPOSING_ORIENTATIONS else (width, height)
