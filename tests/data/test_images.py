"""Image loading: both decoders agree, every file kind comes out as displayed RGB uint8, EXIF rotation
moves pixels and boxes together, and every unreadable file fails naming its path."""

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from detr_ft.data import CocoDetection
from detr_ft.data.images import BadImageError, _decode_pil, _decode_torchvision, load_rgb
from detr_ft.data.transforms import denormalize, make_eval_transforms
from tests.data.tiny_coco import write_damaged_png

PIXELS = np.random.default_rng(0).integers(0, 256, (24, 36, 3), dtype=np.uint8)


def _png_rgb16(path, pixels: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (PIL cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name, save",
    [
        ("rgb.png", lambda p: Image.fromarray(PIXELS).save(p)),
        ("gray.png", lambda p: Image.fromarray(PIXELS[..., 0]).save(p)),
        ("rgba.png", lambda p: Image.fromarray(np.dstack([PIXELS, PIXELS[..., :1]])).save(p)),
        ("palette.png", lambda p: Image.fromarray(PIXELS).convert("P").save(p)),
        ("palette.gif", lambda p: Image.fromarray(PIXELS).convert("P").save(p)),
        ("photo.jpg", lambda p: Image.fromarray(PIXELS).save(p, quality=95)),
        ("gray.jpg", lambda p: Image.fromarray(PIXELS[..., 0]).save(p)),
        ("cmyk.jpg", lambda p: Image.fromarray(PIXELS).convert("CMYK").save(p)),
        ("lossless.webp", lambda p: Image.fromarray(PIXELS).save(p, lossless=True)),
    ],
)
def test_torchvision_and_pil_decode_the_same_pixels(tmp_path, name, save):
    path = tmp_path / name
    save(path)
    fast = _decode_torchvision(path.read_bytes())
    assert fast is not None, "torchvision should read this format"
    assert fast.shape == (3, 24, 36) and fast.dtype == torch.uint8
    assert torch.equal(fast, _decode_pil(path.read_bytes()))
    assert torch.equal(load_rgb(path), fast)


@pytest.mark.parametrize("suffix", ["bmp", "tiff"])
def test_formats_torchvision_cannot_read_fall_back_to_pil(tmp_path, suffix):
    path = tmp_path / f"image.{suffix}"
    Image.fromarray(PIXELS).save(path)
    assert _decode_torchvision(path.read_bytes()) is None
    assert torch.equal(load_rgb(path), torch.from_numpy(PIXELS).permute(2, 0, 1))


def test_16_bit_png_keeps_its_high_byte_in_both_decoders(tmp_path):
    wide = (PIXELS.astype(np.uint16) << 8) | 0x7F  # 16-bit values whose high byte is PIXELS
    _png_rgb16(tmp_path / "rgb16.png", wide)
    assert torch.equal(load_rgb(tmp_path / "rgb16.png"), torch.from_numpy(PIXELS).permute(2, 0, 1))
    Image.fromarray(wide[..., 0]).save(tmp_path / "gray16.png")
    data = (tmp_path / "gray16.png").read_bytes()
    expected = torch.from_numpy(PIXELS[..., 0]).expand(3, -1, -1)
    assert torch.equal(_decode_torchvision(data), expected) and torch.equal(_decode_pil(data), expected)


def _marked_jpeg(path, orientation: int) -> None:
    """A 40x20 (w x h) stored image, grey with a red block at its top-left, tagged with an EXIF orientation."""
    stored = np.full((20, 40, 3), 128, dtype=np.uint8)
    stored[:6, :6] = (230, 20, 20)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, quality=95)


@pytest.mark.parametrize(
    "orientation, shape, red_corner",
    [(1, (20, 40), (0, 0)), (3, (20, 40), (19, 39)), (6, (40, 20), (0, 19)), (8, (40, 20), (39, 0))],
)
def test_exif_orientation_moves_the_pixels(tmp_path, orientation, shape, red_corner):
    path = tmp_path / f"o{orientation}.jpg"
    _marked_jpeg(path, orientation)
    image = load_rgb(path)
    assert tuple(image.shape[-2:]) == shape
    assert int(image[0][red_corner]) > 180 and int(image[1][red_corner]) < 80  # the red block is there
    assert torch.equal(image, _decode_pil(path.read_bytes()))


def test_exif_rotated_photo_boxes_in_displayed_pixels_land_on_the_object(tmp_path):
    """Orientation 6 displays the stored 40x20 image as 20x40 with the red block at the top-right; a box
    annotated there (as any labelling tool shows the photo) must cover red pixels after loading."""
    (tmp_path / "images").mkdir()
    _marked_jpeg(tmp_path / "images" / "photo.jpg", 6)
    annotations = {
        "images": [{"id": 7, "file_name": "photo.jpg", "width": 20, "height": 40}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [14, 0, 6, 6], "area": 36, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "red"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(annotations))
    dataset = CocoDetection(tmp_path / "images", tmp_path / "instances.json", make_eval_transforms(40, 80))
    image, target = dataset[0]
    assert target["orig_size"].tolist() == [40, 20] and target["size"].tolist() == [80, 40]
    cx, cy, w, h = target["boxes"][0].tolist()
    pixels = denormalize(image)
    centre = pixels[:, int(cy * 80), int(cx * 40)]
    assert centre[0] > 0.7 and centre[1] < 0.3, centre


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.png", b"", "not an image file"),
        ("text.jpg", b"hello, not a picture", "not an image file"),
        ("header_only.jpg", b"\xff\xd8\xff\xe0 broken", "cannot decode image"),
    ],
)
def test_unreadable_files_fail_naming_the_path(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadImageError, match=message) as error:
        load_rgb(tmp_path / name)
    assert str(tmp_path / name) in str(error.value)


def test_truncated_jpeg_missing_file_and_folder_fail_naming_the_path(tmp_path):
    Image.fromarray(np.repeat(np.repeat(PIXELS, 8, 0), 8, 1)).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for path, message in (
        (tmp_path / "cut.jpg", "truncated"),
        (tmp_path / "absent.png", "does not exist"),
        (tmp_path, "cannot read image file"),
    ):
        with pytest.raises(BadImageError, match=message) as error:
            load_rgb(path)
        assert str(path) in str(error.value)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P"])
def test_unusual_image_modes_load_as_rgb(tmp_path, mode):
    path = tmp_path / f"image_{mode.replace(';', '')}.png"
    if mode == "I;16":
        Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, (30, 20)).save(path)
    image = load_rgb(path)
    assert image.shape == (3, 20, 30) and image.dtype == torch.uint8
    if mode == "I;16":
        assert int(image[0, 0, 0]) == 40000 >> 8  # scaled, not clipped to white


def test_exif_rotated_jpeg_loads_in_displayed_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    stored = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(path, exif=exif)
    assert load_rgb(path).shape == (3, 40, 20)  # displayed: 20 wide, 40 tall


def test_a_png_with_valid_checksums_but_damaged_pixels_fails_naming_it_and_the_process_lives(tmp_path):
    """torchvision 0.29's PNG decoder killed the process on this file (segmentation fault, no message)."""
    write_damaged_png(tmp_path / "damaged.png")
    code = (
        "from detr_ft.data.images import load_rgb\n"
        f"try:\n    load_rgb({str(tmp_path / 'damaged.png')!r})\n"
        "except Exception as error:\n    print(type(error).__name__, error)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"the process died with status {result.returncode}: {result.stderr}"
    assert result.stdout.startswith(f"BadImageError cannot decode image {tmp_path / 'damaged.png'}: ")
