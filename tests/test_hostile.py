"""A corpus of hostile files, made here: ingestion finishes, every bad file has a typed reason, no
parse runs unbounded, memory stays bounded, and nothing outside the ingested root is read."""

from __future__ import annotations

import json
import os
import resource
import time
import zipfile
import zlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF with a correct cross-reference table around the given object bodies (1-based)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf_bomb(path: Path) -> None:
    """One page whose content stream inflates from ~0.3 MB to 300 MB."""
    compressor = zlib.compressobj(9)
    block = b" " * (16 << 20)
    data = b"".join(compressor.compress(block) for _ in range(19)) + compressor.flush()
    path.write_bytes(_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
    ]))


def pdf_reference_loop(path: Path) -> None:
    path.write_bytes(_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",  # the page tree contains itself
        b"<< /Type /Pages /Kids [2 0 R] /Parent 2 0 R /Count 1 >>",
    ]))


DOCX_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)


def docx_billion_laughs(path: Path) -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    document = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", DOCX_TYPES)
        archive.writestr("_rels/.rels", DOCX_RELS)
        archive.writestr("word/document.xml", document)


def docx_zip_bomb(path: Path) -> None:
    """A zip that unpacks to 1 GB of zeros, named .docx."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", DOCX_TYPES)
        archive.writestr("_rels/.rels", DOCX_RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            zeros = bytes(64 << 20)
            for _ in range(16):
                member.write(zeros)


def test_hostile_corpus_is_reported_file_by_file(rag, tmp_path: Path) -> None:
    from docgen import make_pdf

    root = tmp_path / "hostile"
    root.mkdir()
    (root / "good.md").write_text("# Good\n\nThe lighthouse keeper logs the weather at six every morning.\n")
    pdf_bomb(root / "bomb.pdf")
    pdf_reference_loop(root / "loop.pdf")
    make_pdf(root / "encrypted.pdf", ["A secret page."], password="hunter2")
    valid = make_pdf(tmp_path / "valid.pdf", ["A page that will be cut in half. " * 40])
    (root / "truncated.pdf").write_bytes(valid.read_bytes()[: valid.stat().st_size // 2])
    docx_billion_laughs(root / "laughs.docx")
    docx_zip_bomb(root / "zipbomb.docx")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait, cr\xe8me br\xfbl\xe9e\n".encode("latin-1"))
    (root / "empty.txt").write_bytes(b"")
    (root / "big.txt").write_text("word " * 600_000)  # 3 MB, over the 2 MB cap below
    os.symlink(root / "loop_b.txt", root / "loop_a.txt")
    os.symlink(root / "loop_a.txt", root / "loop_b.txt")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The vault code is 8841-ZEBRA.\n")
    os.symlink(outside / "secret.txt", root / "link.txt")

    index = tmp_path / "idx"
    started = time.monotonic()
    result = rag(
        "ingest", str(root), "--json", "--max-file-mb", "2", index=index,
        env={"RAG_PARSE_TIMEOUT_S": "20", "RAG_PARSE_MEMORY_MB": "768"}, timeout=600,
    )
    elapsed = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = json.loads(result.stdout)
    reasons = {e["path"]: e["reason"] for e in report["skipped"]}

    assert report["added"] == ["good.md"]
    expected = {
        "bomb.pdf": {"decompression-bomb"},
        "loop.pdf": {"corrupt-pdf"},
        "encrypted.pdf": {"encrypted-pdf"},
        "truncated.pdf": {"corrupt-pdf"},
        "laughs.docx": {"xml-bomb"},
        "zipbomb.docx": {"zip-bomb"},
        "latin1.txt": {"not-utf8"},
        "empty.txt": {"empty-file"},
        "big.txt": {"too-large"},
        "loop_a.txt": {"bad-symlink"},
        "loop_b.txt": {"bad-symlink"},
        "link.txt": {"outside-root"},
    }
    assert set(reasons) == set(expected), reasons
    for name, allowed in expected.items():
        assert reasons[name] in allowed, (name, reasons[name], report["skipped"])
    assert elapsed < 300  # every parse is bounded (20 s each at most)
    assert peak_mb < 3000, peak_mb  # a 1 GB bomb never lands in the ingesting process

    # nothing outside the root was read into the index
    from rag.config import Settings
    from rag.service import Rag

    texts = " ".join(c.text for c in Rag(Settings(index_dir=index, offline=True)).index.store.iter_all())
    assert "lighthouse" in texts and "ZEBRA" not in texts


def test_each_parse_runs_under_a_time_limit_and_a_memory_cap(tmp_path: Path) -> None:
    from docgen import make_pdf

    from rag.isolation import load_isolated
    from rag.loaders import LoadError

    bomb = tmp_path / "bomb.pdf"
    pdf_bomb(bomb)
    started = time.monotonic()
    with pytest.raises(LoadError) as err:
        load_isolated(bomb, "bomb.pdf", timeout_s=0.05, memory_mb=768)
    assert err.value.reason == "timeout" and "RAG_PARSE_TIMEOUT_S" in err.value.detail
    assert time.monotonic() - started < 10  # stopped, not waited for

    pages = make_pdf(tmp_path / "report.pdf", [f"Page {n}: the quarterly figures for region {n}." for n in range(1, 30)])
    assert "quarterly" in load_isolated(pages, "report.pdf", timeout_s=60, memory_mb=1024).text
    with pytest.raises(LoadError) as err:  # the same file under a cap too small for the parser itself
        load_isolated(pages, "report.pdf", timeout_s=60, memory_mb=24)
    assert err.value.reason in {"too-large", "parser-crashed"}
