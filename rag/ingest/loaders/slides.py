"""PowerPoint slides with python-pptx: a slide is a page, headed by its title; its text boxes, tables
(as named rows) and speaker notes are its text. The deck's title (its properties', or the first
slide's) heads every slide's section."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.ingest.loaders.base import Loader, LoadError, LoadOptions, check_zip, joined_pages
from rag.ingest.loaders.tables import render_table
from rag.schema import Document


def _load_pptx(path: Path, _: LoadOptions) -> Document:
    import pptx
    from pptx.exc import PackageNotFoundError

    check_zip(path, "pptx")
    try:
        deck = pptx.Presentation(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as err:
        raise LoadError("corrupt-pptx", f"not a readable .pptx ({type(err).__name__}: {err})") from None
    text, pages = joined_pages([_slide_text(slide, number) for number, slide in enumerate(deck.slides, start=1)])
    return Document(source=str(path), text=text, pages=pages, title=deck.core_properties.title or _first_title(deck))


def _first_title(deck: Any) -> str:
    """The title slide's title names the deck (when its properties do not): every slide's section
    carries it, as a document's title does."""
    for slide in list(deck.slides)[:1]:
        shape = slide.shapes.title
        if shape is not None and shape.has_text_frame:
            return " ".join(shape.text_frame.text.split())
    return ""


def _slide_text(slide: Any, number: int) -> str:
    title_shape = slide.shapes.title
    title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
    blocks = [f"## {' '.join(title.split()) or f'Slide {number}'}"]  # every slide starts a section of its own
    title_id = title_shape.shape_id if title_shape is not None else None  # python-pptx makes a new proxy per access
    blocks += [text for shape in _shapes(slide.shapes) if shape.shape_id != title_id and (text := _shape_text(shape))]
    if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) and notes.text.strip():
        blocks.append(f"Speaker notes: {notes.text.strip()}")
    return "\n\n".join(blocks)


def _shapes(shapes: Any) -> Iterator[Any]:
    """Every shape, the ones inside groups included, in reading order."""
    for shape in shapes:
        if getattr(shape, "shapes", None) is not None:  # a group
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _shape_text(shape: Any) -> str:
    if getattr(shape, "has_table", False):
        return render_table([[cell.text for cell in row.cells] for row in shape.table.rows])
    if getattr(shape, "has_text_frame", False):
        return "\n".join(p for p in (para.text.strip() for para in shape.text_frame.paragraphs) if p)
    return ""


LOADER = Loader("pptx", (".pptx",), _load_pptx, isolated=True, paged=True)
