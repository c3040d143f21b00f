"""Reading image files as RGB uint8 tensors in their displayed orientation."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError


class BadImageError(ValueError):
    """An image file that cannot be decoded, with its path."""


def load_rgb(path: str | Path) -> torch.Tensor:
    """-> uint8 [3, H, W]. Grayscale, palette, RGBA (alpha dropped), 16-bit PNG and EXIF-rotated JPEG
    all come out as RGB as a viewer shows them (EXIF orientation applied)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale: scale to 8 bits rather than clipping everything above 255 to white.
                array = np.asarray(image, dtype=np.uint32)
                array = (array >> 8).astype(np.uint8) if array.max() > 255 else array.astype(np.uint8)
                image = Image.fromarray(array, mode="L")
            rgb = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise BadImageError(f"image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadImageError(f"cannot decode image {path}: {error}") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)
