"""Word documents with python-docx: headings from paragraph styles, tables as named rows, in the
order they appear."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rag.ingest.loaders.base import Loader, LoadError, LoadOptions, check_zip
from rag.ingest.loaders.tables import render_table
from rag.schema import Document


def _load_docx(path: Path, _: LoadOptions) -> Document:
    import zipfile

    import docx
    from docx.opc.exceptions import OpcError
    from lxml import etree

    check_zip(path, "docx")
    try:
        document = docx.Document(str(path))
    except etree.XMLSyntaxError as err:
        if "amplification" in str(err) or "entit" in str(err).lower():
            raise LoadError("xml-bomb", f"the .docx XML expands entities explosively ({err}); not opened") from None
        raise LoadError("corrupt-docx", f"not a readable .docx (XMLSyntaxError: {err})") from None
    except (zipfile.BadZipFile, OpcError, KeyError, ValueError) as err:
        raise LoadError("corrupt-docx", f"not a readable .docx ({type(err).__name__}: {err})") from None
    blocks = [text for item in document.iter_inner_content() if (text := _block(item))]
    title = document.core_properties.title or ""
    return Document(source=str(path), text="\n\n".join(blocks), title=title)


def _block(item: Any) -> str:
    """A paragraph (a heading as a Markdown heading) or a table, as text."""
    from docx.table import Table

    if isinstance(item, Table):
        return render_table([[cell.text for cell in row.cells] for row in item.rows])  # merged cells repeat
    text = item.text.strip()
    style = (item.style.name if item.style is not None else "") or ""
    level = re.match(r"Heading (\d)", style)
    if text and level:
        return "#" * int(level.group(1)) + " " + text
    return "# " + text if text and style == "Title" else text


LOADER = Loader("docx", (".docx",), _load_docx, isolated=True)
