"""The documents people really have: a corpus of a scanned PDF, tables (PDF, HTML, .xlsx), slides,
an e-book and e-mail, with 40 questions whose answers are in a scan, a table row, a slide, a
chapter or a mail; answered end to end, scored per type. Prints one JSON object.

    .venv/bin/python scripts/eval_formats.py [--keep DIR] [--model SPEC] [--extract]

For each type: containment (the answer holds the expected words), citation correctness (the
answer cites the expected file, and its page or slide where there is one) and refusals; and the
OCR speed in pages per second (the scanned PDF read alone, in this process).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docgen import make_eml, make_epub, make_pptx, make_scanned_pdf, make_table_pdf, make_xlsx

SCAN = [
    "Facilities notice 1. The north stairwell is closed for repairs until 14 May. Use the south stairwell instead. "
    "The bicycle room in the basement opens at 6:30 and closes at 22:00.",
    "Facilities notice 2. Parcels are collected from the post room at 15:00 every weekday. "
    "The fire drill this spring is on 9 April at 10:30. Visitors must sign in at the east reception desk.",
    "Facilities notice 3. The canteen serves lunch from 11:45 to 14:15. Lost property is kept at the security office for 30 days. "
    "The roof terrace is closed when the wind is stronger than 40 km/h.",
]
ALLOWANCES = [["City", "Per diem", "Hotel cap"], ["Berlin", "24 EUR", "140 EUR"], ["Munich", "28 EUR", "165 EUR"],
              ["Vienna", "26 EUR", "150 EUR"], ["Lisbon", "22 EUR", "120 EUR"], ["Oslo", "35 EUR", "190 EUR"]]  # fmt: skip
PARTS = [["Part", "Code", "Price"], ["Air filter", "AF-220", "18 EUR"], ["Drive belt", "DB-118", "42 EUR"],
         ["Water pump", "WP-305", "96 EUR"], ["Spark plug", "SP-014", "7 EUR"], ["Fuel hose", "FH-090", "13 EUR"]]  # fmt: skip
STAFF = [["Name", "Role", "Extension"], ["Ines Duarte", "Payroll officer", "4417"], ["Tomasz Nowak", "IT support lead", "4523"],
         ["Amara Okafor", "Health and safety officer", "4601"], ["Lena Vogt", "Office manager", "4100"]]  # fmt: skip
ROOMS = [["Room", "Seats", "Floor"], ["Heron", "12", "2"], ["Kestrel", "30", "4"], ["Osprey", "6", "1"]]
SLIDES = [
    ("Project Lantern", ["Quarterly review", "Prepared by the product team"], ""),
    ("Budget", ["The total budget for Project Lantern is 2.4 million EUR."], "Finance approves the budget on 3 June."),
    ("Timeline", ["The beta release is planned for September.", "General availability follows in January."], ""),
    ("Risks", ["The main risk is the supplier's delivery of sensor chips."], "Mitigation: a second supplier in Taiwan."),
]
MAILS = [
    ("Offsite logistics", "The offsite bus leaves at 08:15 from Gate B. Bring a photo ID for the venue.", {}),
    ("Server maintenance", "The mail server will be offline on Saturday from 22:00 to 02:00 for maintenance.", {}),
    ("New badge policy", "Please read the attached policy.", {"badge-policy.txt": "Lost badges cost 15 EUR to replace. Badges must be worn visibly at all times."}),
]  # fmt: skip
CHAPTERS = [
    ("Owls", "Barn owls hunt at dusk and swallow small mammals whole."),
    ("Herons", "Grey herons nest in colonies at the tops of tall trees."),
    ("Swifts", "Common swifts spend up to ten months a year in the air without landing."),
]
# (question, expected words in the answer, file, page or slide or None, type)
QUESTIONS: list[tuple[str, str, str, int | None, str]] = [
    ("Until when is the north stairwell closed?", "14 May", "facilities-scan.pdf", 1, "scan"),
    ("When does the bicycle room close?", "22:00", "facilities-scan.pdf", 1, "scan"),
    ("When are parcels collected from the post room?", "15:00", "facilities-scan.pdf", 2, "scan"),
    ("When is the fire drill this spring?", "9 April", "facilities-scan.pdf", 2, "scan"),
    ("Where must visitors sign in?", "east reception", "facilities-scan.pdf", 2, "scan"),
    ("When does the canteen serve lunch?", "11:45", "facilities-scan.pdf", 3, "scan"),
    ("How long is lost property kept?", "30 days", "facilities-scan.pdf", 3, "scan"),
    ("When is the roof terrace closed?", "40 km/h", "facilities-scan.pdf", 3, "scan"),
    ("What is the per diem in Munich?", "28 EUR", "travel-allowances.pdf", 1, "pdf table"),
    ("What is the hotel cap in Vienna?", "150 EUR", "travel-allowances.pdf", 1, "pdf table"),
    ("What is the per diem in Oslo?", "35 EUR", "travel-allowances.pdf", 1, "pdf table"),
    ("What is the hotel cap in Lisbon?", "120 EUR", "travel-allowances.pdf", 1, "pdf table"),
    ("How much does the drive belt cost?", "42 EUR", "spare-parts.html", None, "html table"),
    ("What is the code of the water pump?", "WP-305", "spare-parts.html", None, "html table"),
    ("What is the price of a spark plug?", "7 EUR", "spare-parts.html", None, "html table"),
    ("Which part has the code FH-090?", "Fuel hose", "spare-parts.html", None, "html table"),
    ("What is the extension of the payroll officer?", "4417", "directory.xlsx", None, "xlsx table"),
    ("Who is the IT support lead?", "Tomasz Nowak", "directory.xlsx", None, "xlsx table"),
    ("What is Amara Okafor's role?", "Health and safety", "directory.xlsx", None, "xlsx table"),
    ("How many seats does the Kestrel room have?", "30", "directory.xlsx", None, "xlsx table"),
    ("On which floor is the Osprey room?", "1", "directory.xlsx", None, "xlsx table"),
    ("What is Lena Vogt's extension?", "4100", "directory.xlsx", None, "xlsx table"),
    ("What is the total budget for Project Lantern?", "2.4 million", "lantern-review.pptx", 2, "slides"),
    ("When does finance approve the Lantern budget?", "3 June", "lantern-review.pptx", 2, "slides"),
    ("When is the beta release of Project Lantern planned?", "September", "lantern-review.pptx", 3, "slides"),
    ("When does general availability of Project Lantern follow?", "January", "lantern-review.pptx", 3, "slides"),
    ("What is the main risk for Project Lantern?", "sensor chips", "lantern-review.pptx", 4, "slides"),
    ("Where is the second supplier for Project Lantern?", "Taiwan", "lantern-review.pptx", 4, "slides"),
    ("When does the offsite bus leave?", "08:15", "offsite.eml", None, "mail"),
    ("Where does the offsite bus leave from?", "Gate B", "offsite.eml", None, "mail"),
    ("When will the mail server be offline?", "Saturday", "maintenance.eml", None, "mail"),
    ("How much does it cost to replace a lost badge?", "15 EUR", "badges.eml", None, "mail"),
    ("How must badges be worn?", "visibly", "badges.eml", None, "mail"),
    ("What should I bring to the offsite venue?", "photo ID", "offsite.eml", None, "mail"),
    ("When do barn owls hunt?", "dusk", "field-guide.epub", None, "e-book"),
    ("What do barn owls swallow whole?", "small mammals", "field-guide.epub", None, "e-book"),
    ("Where do grey herons nest?", "tall trees", "field-guide.epub", None, "e-book"),
    ("How do grey herons nest?", "colonies", "field-guide.epub", None, "e-book"),
    ("How long do common swifts spend in the air?", "ten months", "field-guide.epub", None, "e-book"),
    ("Do swifts land during their months in the air?", "without landing", "field-guide.epub", None, "e-book"),
]


def build(folder: Path) -> Path:
    """Write the corpus into ``folder`` (the scanned PDF rendered from a text PDF, as a scanner would)."""
    folder.mkdir(parents=True, exist_ok=True)
    make_scanned_pdf(folder / "facilities-scan.pdf", SCAN)
    make_table_pdf(folder / "travel-allowances.pdf", "Travel allowances 2026", ALLOWANCES, after="Rates are reviewed every January.")
    rows = "".join(
        "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{c}</{'th' if i == 0 else 'td'}>" for c in row) + "</tr>"
        for i, row in enumerate(PARTS)
    )
    (folder / "spare-parts.html").write_text(
        f"<html><head><title>Spare parts</title></head><body><h1>Spare parts</h1><table><caption>Price list 2026</caption>{rows}</table></body></html>",
        encoding="utf-8",
    )
    make_xlsx(folder / "directory.xlsx", {"Staff": STAFF, "Meeting rooms": ROOMS})
    make_pptx(folder / "lantern-review.pptx", SLIDES)
    for name, (subject, body, attachments) in zip(["offsite.eml", "maintenance.eml", "badges.eml"], MAILS):
        make_eml(folder / name, subject, body, attachments)
    make_epub(folder / "field-guide.epub", "Field guide to birds", CHAPTERS)
    return folder


def _ocr_speed(scan: Path) -> dict[str, float]:
    from rag.ingest.loaders import load

    started = time.perf_counter()
    doc = load(scan)
    seconds = time.perf_counter() - started
    return {"pages": len(doc.pages), "seconds": round(seconds, 2), "pages_per_s": round(len(doc.pages) / seconds, 3)}


def _score(answers: list[dict[str, Any]]) -> dict[str, Any]:
    def share(key: str, rows: list[dict[str, Any]]) -> float:
        return round(sum(r[key] for r in rows) / len(rows), 3)

    kinds = sorted({a["type"] for a in answers})
    rows = {k: [a for a in answers if a["type"] == k] for k in kinds} | {"all": answers}
    return {
        k: {"n": len(r), "containment": share("contained", r), "citation_correct": share("cited", r), "refusals": share("refused", r)}
        for k, r in rows.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="build the corpus and index here (default: a temporary folder)")
    parser.add_argument("--model", help="as rag's --model")
    parser.add_argument("--extract", action="store_true", help="quote the evidence instead of generating (RAG_ANSWER_MODE=extract)")
    args = parser.parse_args()
    from rag.config import Settings
    from rag.service import Rag

    work = args.keep or Path(tempfile.mkdtemp(prefix="rag-formats-"))
    docs = build(work / "docs")
    ocr = _ocr_speed(docs / "facilities-scan.pdf")
    overrides: dict[str, Any] = {"answer_mode": "extract"} if args.extract else {}
    if args.model:
        overrides["model"] = args.model
    rag = Rag(Settings(index_dir=work / "index", offline=True, **overrides))
    started = time.perf_counter()
    report = rag.ingest([docs])
    ingest_s = time.perf_counter() - started
    answers = []
    for question, expected, source, page, kind in QUESTIONS:
        answer = rag.ask(question)
        text = " ".join(answer.text.split()).lower()
        cited = [c for c in answer.citations if c.display_name == source and (page is None or c.page == page)]
        answers.append(
            {"type": kind, "question": question, "contained": expected.lower() in text, "cited": bool(cited), "refused": answer.refused}
        )
        print(json.dumps(answers[-1] | {"answer": answer.text[:200]}), file=sys.stderr, flush=True)
    result = {
        "model": rag.settings.model,
        "answer_mode": rag.settings.answer_mode,
        "files": len(report.added),
        "skipped": [f"{e.path}: {e.reason}" for e in report.skipped],
        "ingest_s": round(ingest_s, 1),
        "ocr": ocr,
        "by_type": _score(answers),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
