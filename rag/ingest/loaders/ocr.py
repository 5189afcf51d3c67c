"""Text from pictures of pages, with Tesseract (offline: Debian's ``tesseract-ocr`` and a language
pack per language, through ``pytesseract``).

The languages are the setting's (``RAG_OCR_LANGUAGES``, Tesseract's names such as ``deu+eng``), or
the document's own: its first page is read as English, or in the script Tesseract's orientation
and script detection sees when that gives next to nothing (Han, Arabic, Cyrillic…); then the
text's language is detected (rag.text.analysis) and, when its pack is installed, the page is read
again in it. Later pages of the document are read in the languages the first one settled on.

Without Tesseract, a file that needs it is skipped with the reason ``needs-ocr`` and the command
that installs it; never indexed as empty.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from rag.ingest.loaders.base import LoadError, LoadOptions
from rag.text.analysis import language

DPI = 300  # Tesseract reads best at about 300 dots per inch
MIN_LETTERS = 20  # fewer letters than this from a page: it was read in the wrong script, or is blank
INSTALL = "install Tesseract: `apt-get install tesseract-ocr` (and a pack per language, e.g. tesseract-ocr-deu) or `brew install tesseract tesseract-lang`"

# ISO 639-1 (what the language detector says) -> Tesseract's pack
_PACKS = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu", "el": "ell",
    "en": "eng", "es": "spa", "et": "est", "fa": "fas", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hr": "hrv",
    "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "ko": "kor", "lt": "lit", "lv": "lav", "nl": "nld", "no": "nor",
    "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus", "sk": "slk", "sl": "slv", "sr": "srp", "sv": "swe", "th": "tha",
    "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "chi_sim",
}  # fmt: skip
# a script Tesseract's OSD names -> the packs that read it (the first installed one is used)
_SCRIPTS = {
    "Han": ["chi_sim", "chi_tra"], "Japanese": ["jpn"], "Hangul": ["kor"], "Arabic": ["ara", "fas", "urd"], "Cyrillic": ["rus", "ukr", "bul"],
    "Devanagari": ["hin"], "Greek": ["ell"], "Hebrew": ["heb"], "Thai": ["tha"], "Bengali": ["ben"],
}  # fmt: skip


def available() -> bool:
    return shutil.which("tesseract") is not None


def require(what: str) -> None:
    """A ``needs-ocr`` error unless Tesseract is installed; ``what`` says what needs it."""
    if not available():
        raise LoadError("needs-ocr", f"{what} has no text layer and Tesseract is not installed to read it: {INSTALL}")


@lru_cache(maxsize=1)
def installed_packs() -> frozenset[str]:
    import pytesseract

    return frozenset(pytesseract.get_languages(config="")) - {"osd"}


def read_pages(images: Iterable[Any], total: int, options: LoadOptions) -> Iterator[str]:
    """The text of each page image, in order; tells ``options.on_page`` after each page."""
    languages = options.ocr_languages
    for number, image in enumerate(images, start=1):
        if languages:
            text = _read(image, languages)
        else:
            text, languages = _read_settling(image)
        options.on_page(number, total)
        yield text


def _read(image: Any, languages: str) -> str:
    import pytesseract

    try:
        return str(pytesseract.image_to_string(image, lang=languages))
    except pytesseract.TesseractError as err:
        raise LoadError(
            "ocr-failed",
            f"Tesseract could not read a page with languages '{languages}' ({err}); install the packs or set RAG_OCR_LANGUAGES",
        ) from None


def _read_settling(image: Any) -> tuple[str, str]:
    """A page read in the languages it turns out to be in, and those languages ("" when the page
    says nothing that settles them: the next page tries again)."""
    packs = installed_packs()
    first = "eng" if "eng" in packs else "+".join(sorted(packs))
    text = _read(image, first)
    if _letters(text) < MIN_LETTERS:
        script_packs = _script_packs(image, packs)
        if not script_packs:
            return text, ""
        first = script_packs
        text = _read(image, first)
        if _letters(text) < MIN_LETTERS:
            return text, ""
    pack = _PACKS.get(language(text))
    if pack is None or pack not in packs or pack in first.split("+"):
        return text, first
    settled = f"{pack}+eng" if "eng" in packs and pack != "eng" else pack
    return _read(image, settled), settled


def _script_packs(image: Any, packs: frozenset[str]) -> str:
    import pytesseract

    try:
        script = str(pytesseract.image_to_osd(image, output_type=pytesseract.Output.DICT).get("script", ""))
    except pytesseract.TesseractError:  # too few characters to tell, or no osd pack
        return ""
    return next((p for p in _SCRIPTS.get(script, []) if p in packs), "")


def _letters(text: str) -> int:
    return sum(1 for c in text if c.isalpha())
