"""Regenerate the bundled sample corpus in rag/sample/docs (written for this project; CC0).

python scripts/make_sample_corpus.py
python scripts/make_sample_corpus.py --scale 2000 --out DIR [--text CORPUS.jsonl]

With --scale, write N mixed files instead (PDF, DOCX, HTML and Markdown in turn) for ingest
benchmarks: each is a few paragraphs taken in turn from the paragraphs of the sample documents and,
if given, the "text" fields of a JSON-lines corpus (e.g. ../shared/eval/squad-dev8/corpus.jsonl),
numbered so that no two files are the same.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docgen import make_docx, make_pdf

OUT = Path(__file__).resolve().parent.parent / "rag" / "sample" / "docs"

MANUAL_PAGES = [
    """Aquila AQ-50 Electric Water Heater - Owner's Manual

1. Overview
The Aquila AQ-50 is a 50-gallon (189-litre) electric storage water heater with two 4,500-watt heating elements. It is designed for indoor installation in homes with a 240-volt supply.

2. Installation
Installation must be carried out by a licensed plumber and a licensed electrician. The heater needs a dedicated 30-amp double-pole circuit breaker. A temperature and pressure relief valve rated at 150 psi must be fitted to the opening marked T&P before the tank is filled. Leave at least 60 cm of clearance in front of the access panels for service.""",
    """3. Operation and temperature
The thermostat is set to 49 degrees Celsius (120 degrees Fahrenheit) at the factory. This setting reduces the risk of scalding and saves energy. Raising the setting above 60 degrees Celsius increases the risk of severe burns.

4. Maintenance
Drain about 10 litres from the drain valve every 6 months to flush out sediment. Test the temperature and pressure relief valve once a year by lifting its lever for a few seconds. Inspect the magnesium anode rod every 2 years and replace it when more than half of its core wire is exposed.""",
    """5. Warranty
The tank is covered by a limited warranty of 6 years from the date of purchase. Heating elements and thermostats are covered for 1 year. The warranty is void if the heater was installed without a temperature and pressure relief valve, if it was operated without water in the tank, or if the anode rod was never inspected or replaced. To make a claim, contact Aquila Support at support@aquila.example with your serial number and proof of purchase.

6. Troubleshooting
No hot water: check the circuit breaker and press the red high-limit reset button behind the upper access panel. Water too hot: lower the thermostat setting. Rumbling noises: flush the tank to remove sediment.""",
]

HANDBOOK = """# Harbor Light Bakery - Employee Handbook

## Working hours
The bakery opens at 6:00 and closes at 19:00, Monday to Saturday. Bakers start their shift at 4:30 so that the first bread is out of the oven when the doors open. Front-of-house staff work in two shifts: 5:45 to 12:45 and 12:15 to 19:15.

## Paid leave
Full-time employees receive 25 days of paid leave per year, plus public holidays. Part-time employees receive leave in proportion to their contracted hours. Leave requests must be submitted at least 14 days in advance through the staff portal. No leave is granted during the two weeks before Christmas, our busiest period.

## Sick days
If you are ill, call the shift manager before 6:00 on the day. A doctor's note is required for absences longer than 3 consecutive days.

## Food safety
Everyone who handles food must complete the food hygiene course within the first month of employment. Hair must be covered in the production area, and jewellery other than a plain wedding band is not allowed. Allergen labels are checked twice: by the baker who packs the product and by the cashier who sells it.

## Staff discount
Employees receive a 30% discount on all bakery products and may take home unsold bread at the end of the day.
"""

LEASE = [
    ("h1", "Residential Lease Agreement"),
    (
        "p",
        "This lease is made between Maple Court Properties (the Landlord) and the Tenant named on the signature page, for Apartment 4B, 12 Maple Court.",
    ),
    ("h2", "1. Term"),
    (
        "p",
        "The lease begins on 1 March 2026 and runs for 12 months. It renews automatically for further 12-month periods unless either party gives notice.",
    ),
    ("h2", "2. Rent"),
    (
        "p",
        "The monthly rent is 1,450 euros, due on the first day of each month. Rent paid more than 5 days late incurs a late fee of 50 euros.",
    ),
    ("h2", "3. Deposit"),
    (
        "p",
        "The Tenant pays a security deposit of two months' rent (2,900 euros). The deposit is returned within 30 days after the end of the lease, less the cost of repairing any damage beyond normal wear and tear.",
    ),
    ("h2", "4. Notice"),
    ("p", "Either party may end the lease by giving at least 60 days' written notice before the end of the current term."),
    ("h2", "5. Pets"),
    ("p", "Cats and small caged animals are allowed. Dogs require the Landlord's written permission."),
]

GARDEN_HTML = """<!doctype html>
<html><head><title>Riverside Community Garden - FAQ</title>
<style>body { font-family: sans-serif; }</style>
<script>console.log("tracking code that must never be indexed");</script>
</head><body>
<h1>Riverside Community Garden: Frequently Asked Questions</h1>
<h2>How do I get a plot?</h2>
<p>Plots are allocated every January from the waiting list. Add your name by emailing the garden secretary. The annual fee is 35 euros for a small plot and 60 euros for a large plot.</p>
<h2>When is the water on?</h2>
<p>The water taps are turned on from 1 April to 31 October. Please use watering cans rather than hoses between 11:00 and 16:00 to reduce evaporation.</p>
<h2>Can I use pesticides?</h2>
<p>No. The garden is run organically: chemical pesticides and synthetic fertilisers are not allowed. Compost from the shared bins is free for members.</p>
<h2>Work days</h2>
<p>Every member is expected to attend at least three shared work days a year, held on the first Saturday of March, June and September.</p>
</body></html>
"""

RELEASE_NOTES = """Notebook Sync 3.2 - Release notes

Version 3.2 adds end-to-end encryption for shared notebooks. Encryption keys never leave your devices.

Sync is now up to 4 times faster on large notebooks because only changed pages are uploaded.

The minimum supported Android version is now Android 10. Version 3.1 remains available for older phones.

Fixed: images pasted from the clipboard were sometimes saved twice.
Fixed: the search box ignored accented characters.
"""


def write_sample(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    make_pdf(out / "water-heater-manual.pdf", MANUAL_PAGES, title="Aquila AQ-50 Owner's Manual")
    (out / "employee-handbook.md").write_text(HANDBOOK, encoding="utf-8")
    make_docx(out / "lease-agreement.docx", LEASE, title="Residential Lease Agreement")
    (out / "garden-faq.html").write_text(GARDEN_HTML, encoding="utf-8")
    (out / "release-notes.txt").write_text(RELEASE_NOTES, encoding="utf-8")
    print(f"wrote {len(list(out.iterdir()))} files to {out}")


def paragraphs(corpus: Path | None) -> list[str]:
    """Paragraphs of the sample documents, and of ``corpus`` (JSON lines with "text") if given."""
    sample = [*MANUAL_PAGES, HANDBOOK, RELEASE_NOTES, re.sub(r"<[^>]+>", " ", GARDEN_HTML), *(t for _, t in LEASE)]
    found = [p.strip() for text in sample for p in re.split(r"\n\s*\n", text) if len(p.strip()) > 80]
    if corpus is not None:
        with corpus.open(encoding="utf-8") as handle:
            found.extend(json.loads(line)["text"] for line in handle if line.strip())
    return found


def write_mixed(out: Path, count: int, corpus: Path | None, per_file: int = 3) -> None:
    """``count`` files of ``per_file`` paragraphs each, in four formats in turn."""
    out.mkdir(parents=True, exist_ok=True)
    source = itertools.cycle(paragraphs(corpus))
    for n in range(count):
        title = f"Document {n:06d}"
        texts = [f"{next(source)} (Reference {n}-{k}.)" for k in range(per_file)]
        kind = ("pdf", "docx", "html", "md")[n % 4]
        path = out / f"{n // 1000:03d}" / f"doc-{n:06d}.{kind}"
        path.parent.mkdir(exist_ok=True)
        if kind == "pdf":
            make_pdf(path, texts, title=title)
        elif kind == "docx":
            make_docx(path, [("h1", title), *(("p", t) for t in texts)], title=title)
        elif kind == "html":
            body = "".join(f"<p>{html.escape(t)}</p>" for t in texts)
            path.write_text(f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>", encoding="utf-8")
        else:
            path.write_text(f"# {title}\n\n" + "\n\n".join(texts) + "\n", encoding="utf-8")
    print(f"wrote {count} files to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, help="Write this many mixed files instead of the sample.")
    parser.add_argument("--out", type=Path, help="Folder to write into (default: rag/sample/docs for the sample).")
    parser.add_argument("--text", type=Path, help="JSON-lines corpus whose 'text' fields add paragraphs (with --scale).")
    args = parser.parse_args()
    if args.scale is None:
        write_sample(args.out or OUT)
    elif args.out is None:
        parser.error("--scale needs --out DIR")
    else:
        write_mixed(args.out, args.scale, args.text)


if __name__ == "__main__":
    main()
