"""EPUB e-books: the chapters in reading order (the package's spine), each read as HTML."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from typing import Any

from rag.ingest.loaders.base import Loader, LoadError, LoadOptions, check_zip
from rag.ingest.loaders.html import html_to_text
from rag.schema import Document

_CONTAINER = "META-INF/container.xml"
_NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_HTML_TYPES = ("application/xhtml+xml", "text/html")


def _load_epub(path: Path, _: LoadOptions) -> Document:
    check_zip(path, "epub")
    try:
        with zipfile.ZipFile(path) as archive:
            package_path = _xml(archive, _CONTAINER).xpath("string(//c:rootfile/@full-path)", namespaces=_NS)
            package = _xml(archive, package_path)
            chapters = [_chapter(archive, name) for name in _spine(package, posixpath.dirname(package_path))]
    except (KeyError, zipfile.BadZipFile, ValueError) as err:
        raise LoadError("corrupt-epub", f"not a readable .epub ({type(err).__name__}: {err})") from None
    title = str(package.xpath("string(//dc:title)", namespaces=_NS)).strip()
    return Document(source=str(path), text="\n\n".join(c for c in chapters if c), title=title)


def _xml(archive: zipfile.ZipFile, name: str) -> Any:
    """An XML member, parsed with entities and network access off (no billion laughs, no XXE)."""
    from lxml import etree

    if not name:
        raise ValueError(f"{_CONTAINER} names no package document")
    data = archive.read(name)
    if b"<!ENTITY" in data:  # no e-book needs its own entities; a bomb or an outside file does
        raise LoadError("xml-bomb", f"{name} declares XML entities (an entity bomb or a link to an outside file); not opened")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        raise ValueError(f"{name}: {err}") from None


def _spine(package: Any, folder: str) -> list[str]:
    """The archive names of the chapters, in reading order."""
    items = {
        item.get("id"): item.get("href", "")
        for item in package.xpath("//opf:manifest/opf:item", namespaces=_NS)
        if item.get("media-type") in _HTML_TYPES
    }
    refs = package.xpath("//opf:spine/opf:itemref/@idref", namespaces=_NS)
    return [posixpath.normpath(posixpath.join(folder, items[ref].split("#")[0])) for ref in refs if ref in items]


def _chapter(archive: zipfile.ZipFile, name: str) -> str:
    return html_to_text(archive.read(name).decode("utf-8", errors="replace"))[1]


LOADER = Loader("epub", (".epub",), _load_epub, isolated=True)
