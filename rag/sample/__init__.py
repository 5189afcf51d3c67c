"""A small sample corpus written for this project and dedicated to the public domain (CC0).

The documents (a water-heater manual as PDF, a bakery handbook as Markdown, a lease as DOCX, a
community-garden FAQ as HTML and release notes as text) are fictional; scripts/make_sample_corpus.py
regenerates them.
"""

from pathlib import Path


def sample_dir() -> Path:
    return Path(__file__).resolve().parent / "docs"
