"""A split's `images`: their keys, the files their `file_name` names and those files' sizes, read from the header
(a file open each, so training checks every image at each start); and, for the data check, every file decoded
as training will, which finds damaged pixel data that a header cannot show."""

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from detr_ft.data.images import BadImageError, displayed_size, escapes_folder, load_rgb


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def image_size(image: dict) -> tuple[float, float] | None:
    width, height = image.get("width"), image.get("height")
    if is_number(width) and is_number(height) and width > 0 and height > 0:
        return width, height
    return None


def _file_is_fine(path: Path, image: dict, size: tuple | None, report) -> bool:
    try:
        width, height = displayed_size(path)
    except OSError as error:
        report.bad_files[image["id"]] = f"image id {image['id']}: file {path} {error}"
        return False
    if size is not None and size != (width, height):
        rotated = size == (height, width)
        hint = " (EXIF-rotated photo? boxes must be in the displayed orientation)" if rotated else ""
        report.errors.append(
            f"image id {image['id']}: {path} is {width}x{height} as displayed but the annotation file says "
            f"'width' {size[0]}, 'height' {size[1]}{hint}"
        )
    return True


def check_images(data: dict, images_dir: Path, report, decode: str | None = None) -> dict:
    """-> {id: image}. `decode`: every file whose header is fine is decoded too (threads, with a progress bar
    showing this label)."""
    images, files = {}, {}
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict):
            report.errors.append(f"images[{index}] is {image!r:.40}, not an object with id, file_name, width, height")
            continue
        image_id, name = image.get("id"), image.get("file_name")
        where = image.get("source") or f"image id {image_id} ({name!r})"
        if not is_id(image_id) or image_id in images:
            problem = f"'id' {image_id!r} is not an integer" if not is_id(image_id) else "duplicate image id"
            report.errors.append(f"{where}: {problem} ('id' must be a unique integer among 'images')")
            continue
        images[image_id] = image
        size, file_fine = image_size(image), True
        if not isinstance(name, str) or not name:
            report.errors.append(f"{where}: 'file_name' must name a file inside {images_dir}")
        elif escapes_folder(images_dir, name):
            report.errors.append(
                f"{where}: 'file_name' leaves the image folder {images_dir} (want a path relative to it, "
                "without '..' or a leading '/')"
            )
        elif images_dir.is_dir():
            file_fine = _file_is_fine(images_dir / name, image, size, report)
            files[image_id] = images_dir / name
        if size is None and file_fine:  # an unreadable file's missing size is a consequence, not a second fault
            report.errors.append(
                f"{where}: 'width' {image.get('width')!r} and 'height' {image.get('height')!r} must be pixel counts > 0"
            )
    if decode:
        _decode(
            report, decode, {image_id: path for image_id, path in files.items() if image_id not in report.bad_files}
        )
    return images


def _decode_problem(path: Path) -> str | None:
    try:
        load_rgb(path)
    except BadImageError as error:
        return str(error)
    return None


def _decode(report, label: str, files: dict[int, Path]) -> None:
    from tqdm import tqdm

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # the decoders release the GIL
        problems = tqdm(pool.map(_decode_problem, files.values()), label, len(files), file=sys.stderr, leave=False)
        for image_id, problem in zip(files, problems, strict=True):
            if problem:
                report.bad_files[image_id] = f"image id {image_id}: {problem}"
