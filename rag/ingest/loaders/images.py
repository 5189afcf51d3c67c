"""Pictures of pages (.png, .jpg, .tiff, .webp, .bmp) read with Tesseract: each frame of a
multi-page TIFF is a page. A picture that claims more pixels than any scan has is refused before
it is decoded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.ingest.loaders import ocr
from rag.ingest.loaders.base import Loader, LoadError, LoadOptions, joined_pages
from rag.schema import Document

MAX_PIXELS = 80_000_000  # an A3 page at 600 dpi is ~70 million
MAX_FRAMES = 2_000


def _load_image(path: Path, options: LoadOptions) -> Document:
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow refuses (DecompressionBombError) at twice this
    try:
        with Image.open(path) as picture:  # reads the header only
            if picture.width * picture.height > MAX_PIXELS:
                raise LoadError("decompression-bomb", f"the picture claims {picture.width}x{picture.height} pixels; not decoded")
            ocr.require("this picture")
            frames = min(getattr(picture, "n_frames", 1), MAX_FRAMES)
            texts = list(ocr.read_pages(_frames(picture, frames), frames, options))
    except Image.DecompressionBombError as err:
        raise LoadError("decompression-bomb", f"{err}; not decoded") from None
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as err:
        raise LoadError("corrupt-image", f"not a readable picture ({type(err).__name__}: {err})") from None
    text, pages = joined_pages([t.strip() for t in texts])
    return Document(source=str(path), text=text, pages=pages)


def _frames(picture: Any, count: int) -> Iterator[Any]:
    for number in range(count):
        picture.seek(number)
        yield picture.convert("RGB")


LOADER = Loader("image", (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"), _load_image, isolated=True, paged=True)
