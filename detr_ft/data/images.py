"""Image files: the size a viewer shows, read from the header alone, and the pixels as RGB uint8 tensors in
that orientation. The first costs a file open per image, so the validator checks every image of a split
at each training start; the second is what the dataset (and the data check's full pass) decodes.

torchvision.io decodes JPEG, GIF and WebP about 1.3x faster than PIL (measured on 640x480 JPEG: 1,150 vs 840
images/s on one core), so it goes first for them. PNG goes to PIL: torchvision 0.29's PNG decoder kills the
process (segmentation fault, no message) on compressed data libpng rejects, including files whose chunk
checksums are valid. PIL also takes what torchvision cannot read (BMP, TIFF, ...). Both apply the EXIF
orientation, so boxes drawn on the image as a viewer shows it match the pixels.
"""

import io
import os
import struct
import warnings
from pathlib import Path, PurePath

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

try:
    from torchvision.io import ImageReadMode, decode_image
except ImportError:  # pragma: no cover - a torchvision without image decoders
    decode_image = None

EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # rotated by 90 or 270 degrees: a viewer swaps width and height
TAIL_BYTES = 1024  # where an end marker is looked for; cameras may pad after JPEG's EOI
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Malformed files make PIL raise any of these (a bomb-sized header raises DecompressionBombError).
PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


class BadImageError(ValueError):
    """An image file that cannot be decoded, with its path."""


def escapes_folder(images_dir: Path, file_name: str) -> bool:
    """True when `file_name` is absolute or climbs (`../`) out of `images_dir` (symlinks are not followed)."""
    if PurePath(file_name).is_absolute():
        return True
    folder = os.path.normpath(images_dir)
    return os.path.commonpath([folder, os.path.normpath(os.path.join(folder, file_name))]) != folder


def _is_truncated(file, size: int, image_format: str | None) -> bool:
    """A missing end marker (JPEG's EOI, PNG's IEND) in the file's last bytes; the read position is kept."""
    marker = END_MARKERS.get(image_format or "")
    if marker is None:
        return False
    position = file.tell()
    file.seek(max(0, size - TAIL_BYTES))
    truncated = marker not in file.read()
    file.seek(position)
    return truncated


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation from the header (PIL's PNG getexif decodes the pixels to find a late eXIf chunk)."""
    if image.format == "PNG":
        exif = Image.Exif()
        exif.load(image.info.get("exif") or b"")
        return exif.get(EXIF_ORIENTATION)
    return image.getexif().get(EXIF_ORIENTATION)


def displayed_size(path: Path) -> tuple[int, int]:
    """(width, height) as a viewer shows the image, from its header; raises OSError naming the fault. A PNG's
    chunk checksums are verified too (read, not decompressed)."""
    if not path.is_file():
        broken = path.is_symlink() and not path.exists()
        raise OSError("is a broken symbolic link" if broken else "is not a file" if path.exists() else "is missing")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise OSError(f"cannot be read ({error.strerror})") from None
    if size == 0:
        raise OSError("is empty (0 bytes)")
    try:
        with path.open("rb") as file, Image.open(file) as image:
            width, height = image.size
            image_format, orientation = image.format, _orientation(image)
            truncated = _is_truncated(file, size, image_format)
            if image_format == "PNG" and not truncated:
                image.verify()
    except UnidentifiedImageError:
        raise OSError("is not an image file (no image format recognises its header)") from None
    except Image.DecompressionBombError as error:
        raise OSError(f"is too large to decode safely ({error})") from None
    except PIL_ERRORS as error:
        raise OSError(f"is damaged or has an unreadable header ({error})") from None
    if truncated:
        raise OSError(f"is truncated (its {image_format} end marker is missing)")
    return (height, width) if orientation in TRANSPOSING_ORIENTATIONS else (width, height)


def _to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """16-bit pixels -> 8 bits by their high byte (as libpng's strip_16), not clipped to white."""
    if pixels.dtype == torch.uint8:
        return pixels
    return (pixels.to(torch.int32) >> 8).clamp(0, 255).to(torch.uint8)


def _decode_torchvision(data: bytes) -> torch.Tensor | None:
    """uint8 [3, H, W], or None when torchvision cannot decode the file (format or content)."""
    if decode_image is None:
        return None
    try:
        with warnings.catch_warnings():  # its deprecation notice, once per image otherwise
            warnings.simplefilter("ignore", DeprecationWarning)
            pixels = decode_image(
                torch.frombuffer(bytearray(data), dtype=torch.uint8),
                mode=ImageReadMode.RGB,
                apply_exif_orientation=True,
            )
    except (RuntimeError, ValueError):
        return None
    if pixels.ndim == 4:  # an animated GIF: its first frame
        pixels = pixels[0]
    return _to_uint8(pixels)


def _decode_pil(data: bytes) -> torch.Tensor:
    """uint8 [3, H, W] via PIL; raises PIL's error for files it cannot read either."""
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I;16"):
            array = np.asarray(image, dtype=np.uint16)
            image = Image.fromarray(_to_uint8(torch.from_numpy(array.astype(np.int32))).numpy(), mode="L")
        elif image.mode in ("I", "F"):
            # 32-bit integer or float grey (TIFF): scale by the 16-bit range when the values exceed 8 bits.
            array = np.asarray(image, dtype=np.float64)
            array = array / 257.0 if array.max() > 255 else array
            image = Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8), mode="L")
        rgb = np.asarray(image.convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


def load_rgb(path: str | Path) -> torch.Tensor:
    """-> uint8 [3, H, W]. Grayscale, palette, RGBA (alpha dropped), CMYK, 16-bit PNG and EXIF-rotated
    JPEG all come out as RGB as a viewer shows them. Raises BadImageError naming the path."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadImageError(f"image file {path} does not exist") from None
    except OSError as error:
        raise BadImageError(f"cannot read image file {path}: {error}") from None
    pixels = None if data.startswith(PNG_SIGNATURE) else _decode_torchvision(data)
    if pixels is not None:
        return pixels
    try:
        return _decode_pil(data)
    except UnidentifiedImageError:
        raise BadImageError(
            f"cannot decode image {path}: not an image file, or a format neither torchvision nor PIL reads "
            "(empty or corrupt?)"
        ) from None
    except PIL_ERRORS as error:  # both failed; PIL's message is the more readable ("image file is truncated")
        raise BadImageError(f"cannot decode image {path}: {error}") from None
