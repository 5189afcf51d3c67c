"""Scanned PDFs and pictures of pages, read with Tesseract in the parse worker: page numbers kept,
the document's language found, progress and the deadline per page, and a clear `needs-ocr` where
Tesseract is missing (real Tesseract where installed: CI installs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from docgen import make_pdf, make_picture, make_scanned_pdf

from rag.ingest.loaders import LoadError, LoadOptions, load, ocr

needs_tesseract = pytest.mark.skipif(not ocr.available(), reason="Tesseract is not installed (apt-get install tesseract-ocr)")

BLENDER = [
    "Chapter 1. The Quokka 3000 blender has a 1.5 litre glass jar.",
    "Chapter 2. To clean the Quokka 3000, fill the jar with warm water and run it on speed 2 for thirty seconds.",
]
LEASE_DE = "Mietvertrag. Die Kündigungsfrist beträgt drei Monate zum Monatsende. Die Miete ist am dritten Werktag fällig."


@needs_tesseract
def test_a_scanned_pdf_is_read_page_by_page_with_its_page_numbers(tmp_path: Path) -> None:
    scan = make_scanned_pdf(tmp_path / "scan.pdf", BLENDER)
    pages: list[tuple[int, int]] = []
    doc = load(scan, options=LoadOptions(on_page=lambda done, total: pages.append((done, total))))
    assert pages == [(1, 2), (2, 2)]
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.page_at(doc.text.index("glass jar")) == 1 and doc.page_at(doc.text.index("warm water")) == 2
    assert "1.5 litre" in doc.text and "thirty seconds" in doc.text


@needs_tesseract
def test_a_scan_is_read_in_its_own_language(tmp_path: Path) -> None:
    if "deu" not in ocr.installed_packs():
        pytest.skip("the German pack is not installed (apt-get install tesseract-ocr-deu)")
    text = load(make_scanned_pdf(tmp_path / "mietvertrag.pdf", [LEASE_DE])).text
    assert "Kündigungsfrist beträgt drei Monate" in text and "fällig" in text  # umlauts read as German


@needs_tesseract
def test_a_set_language_is_used_as_given_and_a_missing_pack_is_a_typed_error(tmp_path: Path) -> None:
    scan = make_scanned_pdf(tmp_path / "scan.pdf", BLENDER[:1])
    assert "glass jar" in load(scan, options=LoadOptions(ocr_languages="eng")).text
    with pytest.raises(LoadError) as info:
        load(scan, options=LoadOptions(ocr_languages="xxx"))
    assert info.value.reason == "ocr-failed" and "RAG_OCR_LANGUAGES" in info.value.detail


@needs_tesseract
def test_pictures_and_multi_page_tiffs_are_pages(tmp_path: Path) -> None:
    from PIL import Image

    picture = make_picture(tmp_path / "notice.png", "The boiler room is locked after 18:00.")
    assert "locked after 18:00" in load(picture).text
    frames = [Image.open(make_picture(tmp_path / f"p{n}.png", text)) for n, text in enumerate(BLENDER)]
    frames[0].save(tmp_path / "fax.tiff", save_all=True, append_images=frames[1:])
    doc = load(tmp_path / "fax.tiff")
    assert [p.number for p in doc.pages] == [1, 2] and doc.page_at(doc.text.index("warm water")) == 2


def test_without_tesseract_a_scan_is_skipped_as_needs_ocr_with_the_install_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    scan, picture = make_scanned_pdf(tmp_path / "scan.pdf", BLENDER), make_picture(tmp_path / "notice.png", "Closed on Sundays.")
    for path, what in [(scan, "pages 1, 2 of this PDF"), (picture, "this picture")]:
        with pytest.raises(LoadError) as info:
            load(path)
        assert info.value.reason == "needs-ocr" and info.value.detail.startswith(what), info.value.detail
        assert "apt-get install tesseract-ocr" in info.value.detail and "brew install tesseract" in info.value.detail
    text = make_pdf(tmp_path / "text.pdf", BLENDER)  # a PDF with a text layer never needs it
    assert "glass jar" in load(text).text


def test_a_blank_page_is_not_a_scan(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    doc = load(make_pdf(tmp_path / "blank.pdf", [BLENDER[0], ""]))
    assert [p.number for p in doc.pages] == [1, 2] and "glass jar" in doc.text


@needs_tesseract
def test_the_worker_reports_each_page_and_each_page_renews_the_deadline(tmp_path: Path) -> None:
    from rag.ingest.isolation import IsolatedParser

    scan = make_scanned_pdf(tmp_path / "scan.pdf", BLENDER * 2)
    pages: list[tuple[int, int]] = []
    options = LoadOptions(on_page=lambda done, total: pages.append((done, total)))
    with IsolatedParser(timeout_s=60, memory_mb=1024, options=options) as parser:
        doc = parser.load(scan, "scan.pdf")
    assert pages == [(n, 4) for n in range(1, 5)] and doc.page_at(doc.text.rindex("warm water")) == 4
    with IsolatedParser(timeout_s=0.05, memory_mb=1024) as parser, pytest.raises(LoadError) as info:
        parser.load(scan, "scan.pdf")  # no page is read in 50 ms
    assert info.value.reason == "timeout"


@needs_tesseract
def test_a_scanned_manual_answers_with_its_page(tmp_path: Path, rag) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_scanned_pdf(docs / "quokka-manual.pdf", BLENDER)
    make_picture(docs / "notice.png", "The boiler room is locked after 18:00 every day.")
    report = json.loads(rag("ingest", str(docs), "--json", index=tmp_path / "index").stdout)
    assert sorted(report["added"]) == ["notice.png", "quokka-manual.pdf"] and report["skipped"] == []
    answer = json.loads(
        rag("ask", "How do I clean the Quokka 3000?", "--json", index=tmp_path / "index", env={"RAG_ANSWER_MODE": "extract"}).stdout
    )
    assert not answer["refused"], answer["refusal_reason"]
    assert any(c["source"] == "quokka-manual.pdf" and c["page"] == 2 and "warm water" in c["quote"] for c in answer["citations"])
    picture = json.loads(
        rag("ask", "When is the boiler room locked?", "--json", index=tmp_path / "index", env={"RAG_ANSWER_MODE": "extract"}).stdout
    )
    assert any(c["source"] == "notice.png" and c["page"] == 1 and "18:00" in c["quote"] for c in picture["citations"])


def test_ingest_without_tesseract_reports_needs_ocr_and_keeps_going(tmp_path: Path, rag) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_scanned_pdf(docs / "scan.pdf", BLENDER[:1])
    (docs / "notes.md").write_text("The archive room is on the second floor.\n", encoding="utf-8")
    report = json.loads(rag("ingest", str(docs), "--json", index=tmp_path / "index", env={"PATH": str(tmp_path / "nowhere")}).stdout)
    assert report["added"] == ["notes.md"]
    assert [(e["path"], e["reason"]) for e in report["skipped"]] == [("scan.pdf", "needs-ocr")]
    assert "tesseract-ocr" in report["skipped"][0]["detail"]
