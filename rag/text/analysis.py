"""One text analysis for every language: the keyword index, the evidence score, verification and
chunking all see words, stems, stop words and sentences through this module.

- Words are matched on NFKC-normalised, case-folded text ("ﬂood" is "flood", "ＡＢＣ" is "abc"), with
  every kind of decimal digit read as ASCII ("١٢" is "12"); quotes and offsets keep the original.
- Words keep their combining marks (Devanagari vowel signs, Arabic harakat), so Hindi words are not
  cut at every vowel sign.
- Scripts written without spaces (Han, Kana, Hangul, Thai, Lao, Khmer, Myanmar) become overlapping
  character bigrams, as Lucene's CJK analyzer does: a two-character word is always a term, with no
  dictionary to install and no choice that differs between machines.
- Each text's language is detected offline (py3langid); its Snowball stemmer (PyStemmer) and stop
  words (stopwords-iso) are used where they exist. English keeps its own short stop list. When the
  detector is unsure (short Latin-script text), the default language is used.
- Numbers are read as digits whether written ("3", "٣") or spelled in the text's language ("drei",
  "dritten", "три"; num2words' ~50 languages, English's own list), so a number check compares values.
  Han numerals are not read (num2words has no Chinese).
- Sentences end at . ! ? and other scripts' terminators (。！？ । ؟ ۔ ። …), never after an
  abbreviation ("z. B.", "Dr.", "e.g.") or an ordinal number ("am 1. März").

``ANALYZER`` names these choices; the index records it and re-indexes when it changes.
"""

from __future__ import annotations

import sys
import threading
import unicodedata
from functools import lru_cache

import regex

ANALYZER = "rag-analysis-2"  # recorded in the index: change it whenever the terms a text yields change
DEFAULT_LANGUAGE = "en"
MAX_TERM_CHARS = 40

_WORD = regex.compile(r"[\p{L}\p{N}][\p{L}\p{N}\p{M}]*")
UNSPACED_SCRIPTS = r"\p{Han}\p{Hiragana}\p{Katakana}\u30fc\p{Hangul}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"  # a regex class body
_UNSPACED = regex.compile(f"[{UNSPACED_SCRIPTS}]+")
_LETTER_SCRIPT = regex.compile(r"\p{L}")
_LATIN_LETTER = regex.compile(r"[\p{L}&&[\x00-\u024f]]", regex.V1)  # letters below U+0250: Latin scripts

_ENGLISH_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    also may might must shall us via one two many much said says say according source sources document documents""".split()
)

_ENGLISH_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty"
).split()
_ENGLISH_VALUES = (
    {w: str(n) for n, w in enumerate(_ENGLISH_NUMBERS)}
    | {w: str(10 * n) for n, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), start=3)}
    | {"hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000"}
    | {w: str(n) for n, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth".split(), start=1)}
    | {"half": "half", "quarter": "quarter", "twice": "twice", "second": "second"}  # no one number (a second is also time)
)
NUMBER_WORDS = frozenset(_ENGLISH_VALUES)  # English's, the words a number check always reads

# ISO 639-1 code -> Snowball algorithm name in PyStemmer
_SNOWBALL = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "da": "danish", "nl": "dutch", "en": "english",
    "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian",
    "ga": "irish", "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "es": "spanish", "sv": "swedish",
    "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}  # fmt: skip


def fold(text: str) -> str:
    """The form text is matched in: NFKC, case-folded, decimal digits of any script as ASCII."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return text if text.isascii() else text.translate(_digit_table())


@lru_cache(maxsize=1)
def _digit_table() -> dict[int, str]:
    return {c: str(unicodedata.decimal(chr(c))) for c in range(0x80, sys.maxunicode + 1) if chr(c).isdecimal()}


def words(text: str) -> list[str]:
    """The folded words of ``text``; runs of an unspaced script as overlapping character bigrams."""
    out: list[str] = []
    for word in _WORD.findall(fold(text)):  # folded once, whole: matching needs no offsets
        out.extend(_split_unspaced(word))
    return out


def _split_unspaced(word: str) -> list[str]:
    if not _UNSPACED.search(word):
        return [word]
    out: list[str] = []
    position = 0
    for run in _UNSPACED.finditer(word):
        if run.start() > position:
            out.append(word[position : run.start()])
        chars = run.group(0)
        out.extend([chars] if len(chars) == 1 else [chars[i : i + 2] for i in range(len(chars) - 1)])
        position = run.end()
    if position < len(word):
        out.append(word[position:])
    return out


def is_unspaced(term: str) -> bool:
    """Whether ``term`` is a bigram (or lone character) of a script written without spaces."""
    return bool(_UNSPACED.fullmatch(term))


# -- language ---------------------------------------------------------------------------------------

_identifier_lock = threading.Lock()
_identifier: list[object] = []


def _classify(text: str) -> tuple[str, float]:
    with _identifier_lock:
        if not _identifier:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            # languages with an ISO 639-1 code: Wu and Cantonese text is Chinese to the analysis, and
            # Egyptian or Moroccan Arabic is Arabic
            identifier.set_languages([code for code in identifier.nb_classes if len(code) == 2])
            _identifier.append(identifier)
        language, probability = _identifier[0].classify(text)  # type: ignore[attr-defined]
    return str(language), float(probability)


def language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language (judged on its start); ``DEFAULT_LANGUAGE`` when the
    detector is unsure (on XQuAD's questions, a guess under 0.5 was wrong half the time)."""
    return _language(text[:2000])


@lru_cache(maxsize=20_000)
def _language(sample: str) -> str:
    letters = len(_LETTER_SCRIPT.findall(sample))
    latin = len(_LATIN_LETTER.findall(sample)) >= letters / 2
    if letters < (8 if latin else 2):
        return DEFAULT_LANGUAGE
    detected, probability = _classify(sample)
    return detected if probability >= 0.5 or not latin else DEFAULT_LANGUAGE  # another script narrows it down


# -- stems and stop words ---------------------------------------------------------------------------

_stemmers = threading.local()  # a Snowball stemmer object is not safe to share between threads


def _stemmer(lang: str) -> object | None:
    cache = getattr(_stemmers, "by_language", None)
    if cache is None:
        cache = _stemmers.by_language = {}
    if lang not in cache:
        import Stemmer

        algorithm = _SNOWBALL.get(lang)
        cache[lang] = Stemmer.Stemmer(algorithm) if algorithm in Stemmer.algorithms() else None
    return cache[lang]


@lru_cache(maxsize=400_000)
def stem(word: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """The Snowball stem of a folded word in ``lang`` (the word itself where there is no stemmer)."""
    stemmer = None if is_unspaced(word) or word.isdigit() else _stemmer(lang)
    stemmed = stemmer.stemWord(word) if stemmer is not None else word  # type: ignore[attr-defined]
    return str(stemmed)[:MAX_TERM_CHARS]


@lru_cache(maxsize=200)
def stopwords(lang: str) -> frozenset[str]:
    if lang == "en":
        return _ENGLISH_STOPWORDS
    import stopwordsiso

    return frozenset(fold(w) for w in stopwordsiso.stopwords(lang)) if stopwordsiso.has_lang(lang) else frozenset()


def is_stopword(word: str, lang: str = DEFAULT_LANGUAGE) -> bool:
    return word in stopwords(lang)


# the values num2words spells in a language: cardinals from 2 ("un", "ein", "uno" are also articles),
# the tens, 100 and 1000, and the first ten ordinals
_SPELLED = [(n, "cardinal") for n in [*range(2, 21), *range(30, 100, 10), 100, 1000]] + [(n, "ordinal") for n in range(1, 11)]


@lru_cache(maxsize=128)
def number_words(lang: str) -> dict[str, str]:
    """The number words of ``lang`` (folded, one word each) and the digits each stands for, from
    num2words (about 50 languages; none for a language it does not spell). English has its own list."""
    if lang == "en":
        return dict(_ENGLISH_VALUES)
    try:
        from num2words import num2words
    except ImportError:  # pragma: no cover - a dependency; without it only digits are compared
        return {}
    out: dict[str, str] = {}
    for value, kind in _SPELLED:
        try:
            spelled = fold(num2words(value, lang=lang, to=kind))
        except (NotImplementedError, OverflowError, ValueError, TypeError, KeyError, AttributeError):
            return out  # num2words does not spell this language (it raises NotImplementedError)
        if len(_WORD.findall(spelled)) == 1:
            out.setdefault(spelled, str(value))
    return out


def number_value(word: str, lang: str) -> str | None:
    """The number ``word`` (folded) stands for, as digits: a numeral of any script, or a number word
    of ``lang`` or English, matched by its stem ("dritten" is "dritte", 3); None for any other word."""
    if word.isdigit():
        return word
    if word in _ENGLISH_VALUES:
        return _ENGLISH_VALUES[word]
    spelled = number_words(lang)
    if word in spelled:
        return spelled[word]
    by_stem = _number_stems(lang)
    return by_stem.get(stem(word, lang)) if by_stem else None


@lru_cache(maxsize=128)
def _number_stems(lang: str) -> dict[str, str]:
    return {stem(w, lang): v for w, v in number_words(lang).items()} if lang != "en" else {}


def is_content(word: str, lang: str = DEFAULT_LANGUAGE) -> bool:
    """A word that carries topic: not a stop word and not a fragment; digits and number words always count."""
    if word.isdigit() or word in NUMBER_WORDS or word in number_words(lang):
        return True
    return word not in stopwords(lang) and (len(word) > 2 or is_unspaced(word) or not word.isascii())


def terms(text: str, lang: str | None = None) -> list[str]:
    """The keyword index's terms: content-bearing words, stemmed in the text's language."""
    lang = lang or language(text)
    stops = stopwords(lang)
    return [stem(w, lang) for w in words(text) if w not in stops and (len(w) > 1 or not w.isascii())]


# -- sentences --------------------------------------------------------------------------------------

# A sentence ends at a terminator (after any closing quotes or brackets and a citation marker such as
# ". [2]") followed by white space that does not open a marker; after 。！？ no space is needed. A
# blank line ends one too, and so does the start of a table row: a Markdown row ("| Paris | €60 |")
# or a line of cells ("City: Paris | Per diem: €60", as rag writes table rows), so that each row is
# a sentence of its own and a number is checked against the row it stands in.
_END = regex.compile(
    r"""(?P<stop>[.!?…؟۔।॥።]+)["'”’»)\]]*(?:\ ?\[\d+\])?\s+(?!\[\d)
      | [。！？]+[」』”’）)\]]*(?:\ ?\[\d+\])?\s*
      | \n[ \t]*\n
      | \n(?=[ \t]*\|)
      | \n(?=[^\n]*\ \|\ )""",
    regex.VERBOSE,
)
_LINE_END = regex.compile(r"\n")
_WORD_BEFORE = regex.compile(r"(\S+)$")
# Abbreviations that take a period in running text (lower case, without their periods). Single letters
# ("J. Smith", "z. B.") and dotted forms ("e.g.", "i.e.", "U.S.") are recognised by their shape.
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr mt ft vs no nr nos fig figs approx ca cf al vol pp ed eds inc ltd co corp
    dept univ gen col lt capt sgt rev hon jan feb mar apr jun jul aug sep sept oct nov dec
    bzw ggf inkl ca abs art str tel hr fr frau hrn nr bd jh jhd dt vgl sog evtl
    sra srta dña dra av avda núm pág cap pres
    mme mlle mgr
    sig sig.ra dott ing
    г гг ул им т тыс млн млрд руб стр
    vb örn""".split()
)
# Languages that write ordinal numbers with a period ("am 1. März"): the period is not a sentence end.
_ORDINAL_DOT = frozenset("de da no nb nn fi tr cs sk sl hr sr bs is et lv lt hu pl fo".split())


def sentences(text: str, *, lines: bool = False, lang: str | None = None) -> list[tuple[int, int]]:
    """Sentence spans (start, end) of ``text``, trimmed of surrounding white space; with ``lines``,
    every line break ends a sentence too. ``lang`` (detected when not given) decides ordinals."""
    lang = lang or language(text)
    cuts = [0] + [m.end() for m in _END.finditer(text) if _ends_sentence(text, m, lang)]
    if lines:
        cuts = sorted(set(cuts) | {m.end() for m in _LINE_END.finditer(text)})
    spans = []
    for start, end in zip(cuts, [*cuts[1:], len(text)]):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def complete_prefix(text: str, lang: str = DEFAULT_LANGUAGE) -> int:
    """Length of the part of ``text`` made of finished sentences (for streaming). A period is
    judged only once the next character has arrived: "am 1. " may go on "März"."""
    last = 0
    for m in _END.finditer(text):
        if (m.end() < len(text) or m.group("stop") != ".") and _ends_sentence(text, m, lang):
            last = m.end()
    return last


def _ends_sentence(text: str, match: regex.Match[str], lang: str) -> bool:
    """False for the period of an abbreviation, an initial or an ordinal number."""
    if match.group("stop") != ".":
        return True
    if "[" in match.group(0) or text[max(0, match.start() - 1) : match.start()] == "]":
        return True  # a citation marker closes a sentence: "every Thursday [1]. and" is two
    following = text[match.end() : match.end() + 1]
    if following.islower():
        return False  # "e.g. the", "ca. drei": a sentence does not begin in lower case
    before = _WORD_BEFORE.search(text, max(0, match.start() - 40), match.start())
    word = before.group(1).lstrip("([\"'“‘«„").casefold() if before else ""
    parts = word.split(".")
    if all(p.isalpha() and len(p) <= 2 for p in parts) and (len(parts) > 1 or len(word) == 1):
        return False  # "J.", "z. B.", "e.g.", "U.S."
    if word in _ABBREVIATIONS:
        return False
    return not (word.isdigit() and len(word) <= 2 and lang in _ORDINAL_DOT)
