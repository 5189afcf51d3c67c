"""Regenerate the bundled sample corpus in rag/sample/docs (written for this project; CC0).

python scripts/make_sample_corpus.py
"""

from __future__ import annotations

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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    make_pdf(OUT / "water-heater-manual.pdf", MANUAL_PAGES, title="Aquila AQ-50 Owner's Manual")
    (OUT / "employee-handbook.md").write_text(HANDBOOK, encoding="utf-8")
    make_docx(OUT / "lease-agreement.docx", LEASE, title="Residential Lease Agreement")
    (OUT / "garden-faq.html").write_text(GARDEN_HTML, encoding="utf-8")
    (OUT / "release-notes.txt").write_text(RELEASE_NOTES, encoding="utf-8")
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")


if __name__ == "__main__":
    main()
