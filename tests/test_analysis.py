"""The one text analysis every stage uses: words, stems, stop words, languages and sentences in
each script, and the keyword index built on it."""

from __future__ import annotations

import pytest

from rag.text import analysis
from rag.text.analysis import fold, language, sentences, terms, words


def _sentences(text: str, **kwargs) -> list[str]:
    return [text[a:b] for a, b in sentences(text, **kwargs)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("全职员工每年有十五天带薪年假。", "zh"),
        ("Die Kündigungsfrist beträgt drei Monate zum Monatsende.", "de"),
        ("يبلغ عدد سكان المدينة مليون نسمة تقريبا.", "ar"),
        ("शहर की जनसंख्या लगभग दस लाख है।", "hi"),
        ("Население Варшавы составляет почти два миллиона человек.", "ru"),
        ("La garantía cubre todas las piezas durante seis años.", "es"),
        ("The warranty covers every part for six years.", "en"),
        ("Warranty?", analysis.DEFAULT_LANGUAGE),  # too short to tell: the default language
    ],
)
def test_language_is_detected_offline_per_text(text: str, expected: str, no_egress) -> None:
    assert language(text) == expected


def test_matching_forms_are_nfkc_case_folded_with_ascii_digits() -> None:
    assert words("The ﬂood and the ﬁre") == ["the", "flood", "and", "the", "fire"]  # PDF ligatures
    assert words("ＡＢＣ １２ ١٢ ۱۲ १२") == ["abc", "12", "12", "12", "12"]  # full-width, Arabic-Indic, Persian, Devanagari
    assert fold("STRASSE") == fold("straße")


def test_words_keep_their_combining_marks() -> None:
    assert words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # not cut at the vowel signs and the virama
    assert words("مُحَمَّد") == ["مُحَمَّد"]


def test_unspaced_scripts_become_character_bigrams() -> None:
    assert words("年假") == ["年假"]
    assert words("带薪年假") == ["带薪", "薪年", "年假"]
    assert words("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert words("ภาษาไทย") == ["ภา", "าษ", "ษา", "าไ", "ไท", "ทย"]
    assert words("iPhone手机") == ["iphone", "手机"]  # a Latin word joined to Han text stays whole


def test_terms_are_stemmed_in_the_texts_language_without_its_stop_words() -> None:
    assert terms("The counties ruled") == ["counti", "rule"]
    assert terms("Die Kündigungsfristen betragen drei Monate", "de") == ["kundigungsfrist", "betrag", "monat"]
    assert terms("Населению Варшавы", "ru") == terms("население Варшава", "ru")
    assert "में" not in terms("शहर में लोग रहते हैं", "hi")  # a Hindi stop word
    assert terms("带薪年假", "zh") == ["带薪", "薪年", "年假"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Der Vertrag beginnt am 1. März 2025. Die Miete ist z. B. am 3. Werktag fällig.",
            ["Der Vertrag beginnt am 1. März 2025.", "Die Miete ist z. B. am 3. Werktag fällig."],
        ),
        (
            "Dr. Smith signed, e.g. the lease. The U.S. office agreed. It ended at 10. Then rain.",
            ["Dr. Smith signed, e.g. the lease.", "The U.S. office agreed.", "It ended at 10.", "Then rain."],
        ),
        (
            "全职员工每年有十五天带薪年假。年假必须在次年三月底前休完！可以吗？",
            ["全职员工每年有十五天带薪年假。", "年假必须在次年三月底前休完！", "可以吗？"],
        ),
        ("यह पहला वाक्य है। यह दूसरा है।", ["यह पहला वाक्य है।", "यह दूसरा है।"]),
        ("هل هذا صحيح؟ نعم.", ["هل هذا صحيح؟", "نعم."]),
        ("The answer is six years [1]. It covers parts. [2] Done.", ["The answer is six years [1].", "It covers parts. [2]", "Done."]),
    ],
)
def test_sentences_end_at_every_scripts_terminators_and_not_after_abbreviations_or_ordinals(text: str, expected: list[str]) -> None:
    assert _sentences(text) == expected


def test_sentence_spans_point_at_the_original_text() -> None:
    text = "  Erste Zeile.\nZweite Zeile ohne Punkt\n\nDritter Absatz.  "
    assert _sentences(text) == ["Erste Zeile.", "Zweite Zeile ohne Punkt", "Dritter Absatz."]
    assert _sentences(text, lines=True) == ["Erste Zeile.", "Zweite Zeile ohne Punkt", "Dritter Absatz."]
    assert _sentences("a\nb", lines=True) == ["a", "b"] and _sentences("a\nb") == ["a\nb"]


def test_the_keyword_index_finds_a_two_character_word_in_chinese_text() -> None:
    from rag.index.bm25 import BM25Index

    keywords = BM25Index.build(
        [("leave", "全职员工每年有十五天带薪年假。"), ("pay", "工资在每月五日发放。"), ("office", "办公室早上九点开门。")], generation=1
    )
    assert [chunk_id for chunk_id, _ in keywords.search("年假", 3)] == ["leave"]
    assert keywords.search("工资", 3)[0][0] == "pay"


def test_the_keyword_index_matches_ligatures_and_inflections_in_any_language() -> None:
    from rag.index.bm25 import BM25Index

    keywords = BM25Index.build(
        [
            ("flood", "The ﬂood insurance excludes basements."),
            ("de", "Die Kündigungsfristen betragen drei Monate."),
            ("x", "Unrelated text here."),
        ],
        generation=1,
    )
    assert keywords.search("flood", 3)[0][0] == "flood"
    assert keywords.search("Wie lang ist die Kündigungsfrist?", 3)[0][0] == "de"


def test_a_streamed_period_is_judged_once_the_next_character_has_arrived() -> None:
    from rag.text.analysis import complete_prefix

    assert complete_prefix("Der Mietvertrag beginnt am 1. ", "de") == 0  # "März" may follow
    assert complete_prefix("Der Mietvertrag beginnt am 1. März 2025. Die", "de") == len("Der Mietvertrag beginnt am 1. März 2025. ")
    assert complete_prefix("It ended. Then", "en") == len("It ended. ")
    assert complete_prefix("Fired every Thursday [1]. and", "en") == len("Fired every Thursday [1]. ")  # a cited sentence is done
    assert complete_prefix("结束了。", "zh") == len("结束了。")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Die Kündigungsfrist beträgt drei Monate.", {"3"}),
        ("Die Miete ist am dritten Werktag fällig.", {"3"}),  # an inflected ordinal, by its stem
        ("The notice period is three months from 1 May.", {"3", "1"}),
        ("Срок уведомления составляет три месяца.", {"3"}),
        ("مدة الإشعار ثلاثة أشهر أو ٣ أسابيع.", {"3"}),
        ("El plazo es de tres meses y un día.", {"3"}),  # "un" is an article, not a number
        ("Wait a second.", {"second"}),  # a second is also time: compared as a word
    ],
)
def test_numbers_are_read_as_digits_whether_written_or_spelled(text: str, expected: set[str]) -> None:
    from rag.text.spans import numbers

    assert numbers(text) == expected
