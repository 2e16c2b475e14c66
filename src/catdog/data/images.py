"""Image files -> uint8 arrays, one file at a time, so that one bad file is skipped with a
reason instead of ending the whole run (the reference loader stops on the first)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# What the loader looks at; other files in class folders are ignored, as Keras' loader does.
SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
# Bigger images are refused before decoding: 12,000 x 10,000 RGB is ~360 MB decoded.
MAX_PIXELS = 120_000_000


class BadImage(Exception):
    """A file that cannot be used as an image; the message says why."""


def list_images(folder: Path) -> list[Path]:
    """Image files under FOLDER, in sub-folders too (symlinked files included), sorted."""
    out = []
    for root, _, files in sorted(os.walk(folder)):
        out += [Path(root, f) for f in sorted(files) if f.lower().endswith(SUFFIXES)]
    return out


def decode(path: Path, image_size) -> np.ndarray:
    """PATH as (height, width, 3) uint8, resized as Keras' image_dataset_from_directory
    does (bilinear, no crop). TensorFlow decodes JPEG, PNG (16-bit too), GIF and BMP exactly
    as that loader would; Pillow takes over for what TensorFlow cannot read (WebP, some
    CMYK JPEGs). EXIF orientation is ignored, as in Keras' loader. Raises BadImage."""
    import tensorflow as tf

    size = path.stat().st_size
    if size == 0:
        raise BadImage("empty file")
    width, height = _dimensions(path)
    if width * height > MAX_PIXELS:
        raise BadImage(f"{width}x{height} pixels is over the {MAX_PIXELS:,}-pixel limit")
    try:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        image = _decode_with_pillow(path)
    resized = tf.image.resize(image, tuple(image_size))
    return np.clip(np.rint(resized.numpy()), 0, 255).astype(np.uint8)


def _dimensions(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise BadImage("not an image (unreadable header)") from exc
    except Image.DecompressionBombError as exc:
        raise BadImage(str(exc).split(" could")[0]) from exc


def _decode_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:  # truncated data, broken chunks
        raise BadImage(f"cannot be decoded ({str(exc).splitlines()[0][:100]})") from exc
