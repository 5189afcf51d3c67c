"""A small sample corpus written for this project and dedicated to the public domain (CC0).

The documents (a water-heater manual as PDF, a bakery handbook as Markdown, a lease as DOCX, a
community-garden FAQ as HTML and release notes as text) are fictional; scripts/make_sample_corpus.py
regenerates them.
"""

from pathlib import Path


def sample_dir() -> Path:
    return Path(__file__).resolve().parent / "docs"


QUESTIONS = [
    "How long is the warranty on the water heater?",
    "How many days of paid leave do full-time employees get?",
    "What is the late fee for rent?",
    "When are the garden water taps turned on?",
    "What Android version does Notebook Sync need?",
    "How often should the anode rod be inspected?",
    "What discount do bakery employees get?",
    "How much is the security deposit?",
    "What voids the water heater warranty?",
    "How much notice is needed to end the lease?",
    "Are dogs allowed in the apartment?",
    "When do bakers start their shift?",
]
"""Questions the sample documents answer (benchmarks and load checks use them)."""
