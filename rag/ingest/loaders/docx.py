"""Word documents with python-docx: headings from paragraph styles, table rows as lines."""

from __future__ import annotations

import re
from pathlib import Path

from rag.ingest.loaders.base import Loader, LoadError
from rag.schema import Document

MAX_DOCX_UNPACKED = 500_000_000  # bytes a .docx may unpack to
MAX_ZIP_RATIO = 200  # real documents compress far less than this


def _load_docx(path: Path) -> Document:
    import zipfile

    import docx
    from docx.opc.exceptions import OpcError
    from lxml import etree

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
        unpacked = sum(m.file_size for m in members)
        packed = sum(m.compress_size for m in members) or 1
        if unpacked > MAX_DOCX_UNPACKED or (unpacked / packed > MAX_ZIP_RATIO and unpacked > 10_000_000):
            raise LoadError(
                "zip-bomb",
                f"the .docx would unpack to {unpacked / 1e6:.0f} MB ({unpacked / packed:.0f}x its size); not opened",
            )
        document = docx.Document(str(path))
    except etree.XMLSyntaxError as err:
        if "amplification" in str(err) or "entit" in str(err).lower():
            raise LoadError("xml-bomb", f"the .docx XML expands entities explosively ({err}); not opened") from None
        raise LoadError("corrupt-docx", f"not a readable .docx (XMLSyntaxError: {err})") from None
    except (zipfile.BadZipFile, OpcError, KeyError, ValueError) as err:
        raise LoadError("corrupt-docx", f"not a readable .docx ({type(err).__name__}: {err})") from None
    blocks: list[str] = []
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        level = re.match(r"Heading (\d)", style)
        if level:
            blocks.append("#" * int(level.group(1)) + " " + text)
        elif style == "Title":
            blocks.append("# " + text)
        else:
            blocks.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells]
            if any(cells):
                blocks.append(" | ".join(cells))
    title = document.core_properties.title or ""
    return Document(source=str(path), text="\n\n".join(blocks), title=title)


LOADER = Loader("docx", (".docx",), _load_docx, isolated=True)
