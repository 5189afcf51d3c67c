from __future__ import annotations

import os
from pathlib import Path

import pytest
from docgen import make_pdf

from rag.errors import InputError
from rag.ingest.discovery import discover
from rag.ingest.loaders import LoadError, load

MB = 1_000_000


def test_loads_every_supported_format(corpus: Path) -> None:
    found, errors = discover([corpus], 10 * MB)
    assert errors == []
    names = sorted(f.display_name for f in found)
    assert names == ["contract.docx", "faq.html", "manual.pdf", "pets.md", os.path.join("sub", "travel.txt")]
    texts = {f.display_name: load(f.path, f.display_name) for f in found}
    assert "twelve books" in texts["faq.html"].text
    assert "do-not-index" not in texts["faq.html"].text  # scripts are dropped
    assert texts["faq.html"].title == "FAQ"
    assert "# Library FAQ" in texts["faq.html"].text  # headings survive as structure
    assert "# Service contract" in texts["contract.docx"].text
    assert "4 hours" in texts["contract.docx"].text


def test_pdf_keeps_page_numbers(corpus: Path) -> None:
    doc = load(corpus / "manual.pdf")
    assert [p.number for p in doc.pages] == [1, 2]
    offset = doc.text.index("warm water")
    assert doc.page_at(offset) == 2
    assert doc.page_at(doc.text.index("glass jar")) == 1


def test_encrypted_pdf_is_reported(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "secret.pdf", ["top secret"], password="hunter2")
    with pytest.raises(LoadError) as info:
        load(path)
    assert info.value.reason == "encrypted-pdf"
    assert "password" in info.value.detail or "encrypted" in info.value.detail


def test_truncated_pdf_is_reported(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", ["some text " * 50])
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    with pytest.raises(LoadError) as info:
        load(broken)
    assert info.value.reason in {"corrupt-pdf", "no-text"}


def test_non_utf8_text_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    with pytest.raises(LoadError) as info:
        load(path)
    assert info.value.reason == "not-utf8"
    assert "iconv" in info.value.detail


def test_corrupt_docx_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "fake.docx"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(LoadError) as info:
        load(path)
    assert info.value.reason == "corrupt-docx"


def test_discover_skips_with_reasons(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "empty.txt").write_bytes(b"")
    (root / "song.mp3").write_bytes(b"ID3")
    (root / "big.txt").write_text("x" * 2000)
    outside = tmp_path / "outside.txt"
    outside.write_text("private data outside the root")
    (root / "link.txt").symlink_to(outside)
    (root / "loop.txt").symlink_to(root / "loop.txt")
    (root / "ok.md").write_text("fine")
    found, errors = discover([root], max_bytes=1000)
    assert [f.display_name for f in found] == ["ok.md"]
    reasons = {e.path: e.reason for e in errors}
    assert reasons == {
        "big.txt": "too-large",
        "empty.txt": "empty-file",
        "song.mp3": "unsupported-type",
        "link.txt": "outside-root",
        "loop.txt": "bad-symlink",
    }


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        discover([tmp_path / "nope"], MB)


def test_pdf_heading_lines_become_headings_not_part_of_the_next_sentence() -> None:
    from rag.ingest.loaders.pdf import _pdf_headings
    from rag.sample import sample_dir

    text = "4. Maintenance\nDrain the tank every 6 months.\n5. Warranty\nThe tank is covered for 6 years. The\nWarranty is void if misused."
    assert _pdf_headings(text).split("\n") == [
        "## 4. Maintenance",
        "",
        "Drain the tank every 6 months.",
        "",
        "## 5. Warranty",
        "",
        "The tank is covered for 6 years. The",
        "Warranty is void if misused.",  # a wrapped line is not a heading
    ]
    doc = load(sample_dir() / "water-heater-manual.pdf")
    assert "## 5. Warranty\n\nThe tank is covered" in doc.text


def test_each_file_type_has_one_registered_loader_and_the_dispatcher_knows_no_formats() -> None:
    import inspect

    import rag.ingest.loaders as registry
    from rag.ingest.loaders import LOADERS, SUPPORTED_SUFFIXES, loader_for

    suffixes = [s for loader in LOADERS for s in loader.suffixes]
    assert len(suffixes) == len(set(suffixes)) and set(suffixes) == SUPPORTED_SUFFIXES
    for loader in LOADERS:
        for suffix in loader.suffixes:
            assert loader_for(Path("x" + suffix.upper())) is loader
    source = inspect.getsource(registry.load) + inspect.getsource(registry.loader_for)
    assert not any(s in source for s in SUPPORTED_SUFFIXES)  # a new format never touches them
    with pytest.raises(LoadError) as caught:
        loader_for(Path("notes.odt"))
    assert caught.value.reason == "unsupported-type"


def test_every_isolated_loader_runs_in_the_worker_and_has_hostile_files() -> None:
    """A loader whose input can be hostile must be exercised by scripts/hostile_corpus.py."""
    import hostile_corpus

    from rag.ingest.loaders import LOADERS

    hostile = {Path(name).suffix for name in [*hostile_corpus.EXPECTED, *hostile_corpus.GOOD]}  # refused, or read despite it
    isolated = [loader for loader in LOADERS if loader.isolated]
    assert {loader.name for loader in isolated} >= {"pdf", "docx", "html"}
    missing = [loader.name for loader in isolated if not hostile & set(loader.suffixes)]
    assert not missing, f"add hostile files for {missing} to scripts/hostile_corpus.py"
