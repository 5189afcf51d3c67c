"""A cited PDF page as the reader knows it: the page rendered, the quoted words marked on it.

pypdfium2 (Apache-2.0/BSD) renders the page and gives each character's box; the quote is found
in the page's characters with white space ignored, since a PDF's text layer breaks lines where the
index joined them.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from pathlib import Path

SCALE = 1.4  # 72 dpi × 1.4: readable beside the chat, about 100 kB per page


def page_image(path: str, page: int, quote: str) -> str | None:
    """A PNG data URL of ``page`` (1-based) of the PDF at ``path`` with ``quote`` highlighted, or
    None when the file or page cannot be rendered."""
    try:
        return _render(path, Path(path).stat().st_mtime_ns, page, " ".join(quote.split()))
    except Exception:  # a missing, changed or damaged file: the text passage still shows
        return None


@lru_cache(maxsize=32)
def _render(path: str, _mtime: int, page_number: int, quote: str) -> str | None:
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    pdf = pdfium.PdfDocument(path)
    try:
        if not 1 <= page_number <= len(pdf):
            return None
        page = pdf[page_number - 1]
        height = page.get_height()
        boxes = _quote_boxes(page.get_textpage(), quote)
        image = page.render(scale=SCALE).to_pil().convert("RGBA")
    finally:
        pdf.close()
    overlay = ImageDraw.Draw(image, "RGBA")
    for left, bottom, right, top in boxes:  # PDF space (origin bottom left) → image space
        overlay.rectangle(
            [left * SCALE - 1, (height - top) * SCALE - 1, right * SCALE + 1, (height - bottom) * SCALE + 1], fill=(255, 214, 0, 90)
        )
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _quote_boxes(textpage: object, quote: str) -> list[tuple[float, float, float, float]]:
    """One box per line of the page that the quote covers (empty when it is not on the page)."""
    count = textpage.count_chars()  # type: ignore[attr-defined]
    text = textpage.get_text_range(0, count)  # type: ignore[attr-defined]
    kept = [i for i, ch in enumerate(text[:count]) if not ch.isspace()]
    letters = "".join(text[i] for i in kept)
    wanted = "".join(quote.split())
    at = letters.find(wanted) if wanted else -1
    if at < 0:
        return []
    lines: list[list[float]] = []
    for i in kept[at : at + len(wanted)]:
        left, bottom, right, top = textpage.get_charbox(i)  # type: ignore[attr-defined]
        if lines and abs(lines[-1][1] - bottom) < 3:
            line = lines[-1]
            line[0], line[2], line[3] = min(line[0], left), max(line[2], right), max(line[3], top)
        else:
            lines.append([left, bottom, right, top])
    return [(a, b, c, d) for a, b, c, d in lines]
