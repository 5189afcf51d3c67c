"""Tables, spreadsheets, slides, e-books and e-mail: each read into text whose rows keep their
column headers, whose slides keep their numbers, and whose answers cite the right row (real loaders,
real index, bundled embedder)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from docgen import make_docx_table, make_eml, make_epub, make_pptx, make_table_pdf, make_xlsx

from rag.ingest.loaders import LoadError, load
from rag.ingest.loaders.tables import markdown_tables, render_table

PER_DIEM = [
    ["City", "Per diem", "Hotel cap"],
    ["Berlin", "24 EUR", "140 EUR"],
    ["Munich", "28 EUR", "165 EUR"],
    ["Hamburg", "26 EUR", "150 EUR"],
]


def test_every_row_names_its_cells_by_the_header_row() -> None:
    text = render_table(PER_DIEM, caption="Travel allowances 2026")
    lines = text.splitlines()
    assert lines[0] == "###### Travel allowances 2026" and lines[1] == ""
    assert "City: Munich | Per diem: 28 EUR | Hotel cap: 165 EUR" in lines
    assert not any(line.startswith("City | ") or line == "City: City" for line in lines)  # the header is not a row of its own
    assert render_table([["Name", "", "Role"], ["Ana", "x", "lead"]]) == "Name: Ana | Column 2: x | Role: lead"
    assert render_table([["Tasks"], ["Sweep"], ["Mop"]]) == "Tasks\nSweep\nMop"  # one column: a list, not a table
    assert render_table([["Region", "Q1", "Q2"], ["North", 1200.0, None]]) == "Region: North | Q1: 1200"
    assert render_table([["Total", "Total", "3"]]) == "Total | Total | 3"  # one row: nothing to name it by
    assert render_table([["a\nb", "c"], ["line\nbreak", "d"]]) == "a b: line break | c: d"  # a row stays one line


def test_markdown_pipe_tables_become_named_rows_and_the_rest_is_untouched() -> None:
    text = "# Rates\n\nIntro line | not a table.\n\n| City | Per diem |\n|:-----|-----:|\n| Munich | 28 EUR |\n| Berlin | 24 \\| 25 EUR |\n\nAfter.\n"
    out = markdown_tables(text)
    assert "City: Munich | Per diem: 28 EUR\nCity: Berlin | Per diem: 24 | 25 EUR\n\nAfter." in out
    assert out.startswith("# Rates\n\nIntro line | not a table.\n\n") and "|:---" not in out


def test_a_long_table_is_chunked_between_rows_and_every_chunk_keeps_its_heading(tmp_path: Path) -> None:
    from rag.ingest.chunking import chunk_document

    rows = [["Item", "Code", "Price"]] + [[f"Part {n}", f"P-{n:04d}", f"{n} EUR"] for n in range(200)]
    page = tmp_path / "parts.html"
    page.write_text(f"<h1>Spare parts</h1><table><caption>Price list</caption>{_html_rows(rows)}</table>", encoding="utf-8")
    doc = load(page)
    chunks = chunk_document(doc, lambda texts: [len(t.split()) for t in texts], max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.heading == "Spare parts > Price list"
        assert all(line.startswith("Item: Part ") and line.endswith(" EUR") for line in chunk.text.splitlines())


def _html_rows(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    return f"<tr>{head}</tr>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows[1:])


def test_word_tables_stand_under_their_heading_in_document_order(tmp_path: Path) -> None:
    path = make_docx_table(tmp_path / "rates.docx", "Per diem rates", PER_DIEM, after="Rates are reviewed every January.")
    text = load(path).text
    assert text.index("# Per diem rates") < text.index("City: Munich | Per diem: 28 EUR") < text.index("reviewed every January")


def test_pdf_tables_are_found_by_their_rules_and_written_where_they_stand(tmp_path: Path) -> None:
    from rag.ingest.chunking import chunk_document

    pdf = make_table_pdf(tmp_path / "rates.pdf", "Per diem rates 2026", PER_DIEM, after="Rates are reviewed every January.")
    doc = load(pdf)
    assert "City: Munich | Per diem: 28 EUR | Hotel cap: 165 EUR" in doc.text
    assert doc.text.index("Per diem rates 2026") < doc.text.index("City: Berlin") < doc.text.index("reviewed every January")
    assert "City Per diem Hotel cap" not in doc.text  # the table is not also there as loose words
    chunks = chunk_document(doc, lambda texts: [len(t.split()) for t in texts], max_tokens=200, overlap_tokens=0)
    assert [c.heading for c in chunks] == ["Per diem rates 2026"] and chunks[0].page == 1


def test_spreadsheets_keep_sheet_names_and_csv_delimiters_are_found(tmp_path: Path) -> None:
    book = make_xlsx(tmp_path / "travel.xlsx", {"Per diem": PER_DIEM, "Mileage": [["Vehicle", "Rate"], ["Car", 0.3]]})
    text = load(book).text
    assert "## Per diem\n\nCity: Berlin | Per diem: 24 EUR | Hotel cap: 140 EUR\n" in text
    assert "## Mileage\n\nVehicle: Car | Rate: 0.3" in text
    semicolons = tmp_path / "rates.csv"
    semicolons.write_text("City;Per diem\nMunich;28 EUR\n", encoding="utf-8")
    assert load(semicolons).text == "City: Munich | Per diem: 28 EUR"


def test_slides_are_pages_with_titles_bullets_and_speaker_notes(tmp_path: Path) -> None:
    deck = make_pptx(
        tmp_path / "kickoff.pptx",
        [
            ("Project Heron", ["Kick-off meeting", "March 2026"], ""),
            ("Budget", ["Total budget: 1.2 million EUR"], "Finance signs off on 15 April."),
        ],
    )
    doc = load(deck)
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.page_at(doc.text.index("1.2 million")) == 2 and doc.page_at(doc.text.index("Kick-off")) == 1
    assert "## Budget" in doc.text and "Speaker notes: Finance signs off on 15 April." in doc.text
    assert doc.title == "Project Heron" and doc.text.count("Project Heron") == 1  # the title slide names the deck, once


def test_ebooks_are_read_in_spine_order_with_their_title(tmp_path: Path) -> None:
    book = make_epub(
        tmp_path / "guide.epub", "Field guide", [("Owls", "Barn owls hunt at dusk."), ("Herons", "Grey herons nest in colonies.")]
    )
    doc = load(book)
    assert doc.title == "Field guide"
    assert doc.text.index("# Owls") < doc.text.index("Barn owls hunt at dusk.") < doc.text.index("# Herons")


def test_mail_keeps_headers_body_and_text_attachments(tmp_path: Path) -> None:
    mail = make_eml(
        tmp_path / "offsite.eml", "Offsite logistics", "The offsite bus leaves at 08:15 from Gate B.", {"agenda.txt": "Day 2: river walk."}
    )
    doc = load(mail)
    assert doc.title == "Offsite logistics"
    assert doc.text.startswith("# Offsite logistics\n\nFrom: ana@example.org\nTo: team@example.org\nDate: Mon, 02 Mar 2026")
    assert "08:15 from Gate B" in doc.text and "## Attachment: agenda.txt\n\nDay 2: river walk." in doc.text


def test_malformed_files_of_each_new_type_get_a_typed_reason(tmp_path: Path) -> None:
    for name in ("broken.xlsx", "broken.pptx", "broken.epub"):
        (tmp_path / name).write_bytes(b"PK\x03\x04 not really a zip")
        with pytest.raises(LoadError) as info:
            load(tmp_path / name)
        assert info.value.reason == f"corrupt-{name.split('.')[1]}", info.value
    no_package = tmp_path / "empty.epub"
    with zipfile.ZipFile(no_package, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
    with pytest.raises(LoadError) as info:
        load(no_package)
    assert info.value.reason == "corrupt-epub" and "container.xml" in info.value.detail
    garbage = tmp_path / "garbage.eml"
    garbage.write_bytes(b"\xff\xfe\x00 no headers at all\r\n--boundary\r\nContent-Type: multipart/mixed; boundary=\r\n")
    with pytest.raises(LoadError) as info:  # not indexed as junk
        load(garbage)
    assert info.value.reason == "corrupt-eml" and "headers" in info.value.detail


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory, embedder):
    """A folder of the new types, indexed with the bundled embedder."""
    from rag.config import Settings
    from rag.service import Rag

    root = tmp_path_factory.mktemp("office")
    docs = root / "docs"
    docs.mkdir()
    make_xlsx(docs / "travel-policy.xlsx", {"Per diem": PER_DIEM})
    make_pptx(docs / "kickoff.pptx", [("Project Heron", ["Kick-off"], ""), ("Budget", ["The total budget is 1.2 million EUR."], "")])
    make_eml(docs / "offsite.eml", "Offsite logistics", "The offsite bus leaves at 08:15 from Gate B.")
    make_epub(docs / "guide.epub", "Field guide", [("Herons", "Grey herons nest in tall trees near water.")])
    (docs / "rooms.csv").write_text("Room;Seats;Floor\nHeron;12;2\nKestrel;30;4\n", encoding="utf-8")
    (docs / "parts.html").write_text(
        f"<h1>Spare parts</h1><table>{_html_rows([['Part', 'Price'], ['Filter', '12 EUR']])}</table>", encoding="utf-8"
    )
    rag = Rag(Settings(index_dir=root / "index", offline=True, answer_mode="extract"), embedder=embedder)
    report = rag.ingest([docs])
    return rag, report, docs


def test_every_new_type_is_indexed(office) -> None:
    _, report, _ = office
    assert sorted(report.added) == ["guide.epub", "kickoff.pptx", "offsite.eml", "parts.html", "rooms.csv", "travel-policy.xlsx"], (
        report.skipped
    )
    assert report.skipped == []


@pytest.mark.parametrize(
    ("question", "source", "quoted", "page"),
    [
        ("What is the per diem in Munich?", "travel-policy.xlsx", "City: Munich | Per diem: 28 EUR", None),
        ("What is the total budget of the project?", "kickoff.pptx", "1.2 million EUR", 2),
        ("When does the offsite bus leave?", "offsite.eml", "08:15 from Gate B", None),
        ("Where do grey herons nest?", "guide.epub", "tall trees near water", None),
        ("How many seats does the Kestrel room have?", "rooms.csv", "Room: Kestrel | Seats: 30", None),
        ("What is the price of the filter?", "parts.html", "Part: Filter | Price: 12 EUR", None),
    ],
)
def test_a_question_is_answered_from_a_row_a_slide_a_mail_or_a_chapter(office, question, source, quoted, page, no_egress) -> None:
    rag, _, _ = office
    answer = rag.ask(question)
    assert not answer.refused, answer.refusal_reason
    cited = [c for c in answer.citations if quoted in c.quote]
    assert cited and cited[0].display_name == source, [(c.display_name, c.quote) for c in answer.citations]
    assert cited[0].page == page
