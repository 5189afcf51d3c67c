"""Train and calibrate the answer judge (rag/answer/judge.json) from SQuAD and XQuAD, and report it
on articles it never saw.

    python scripts/train_judge.py [--shared ../shared] [--seed 0] [--quick] [--out rag/answer/judge.json]

For every question the retrieval the assistant itself runs gives the passages; the ``Verifier``
measures the judge's signals (``rag.answer.judge.FEATURES``) exactly as when answering. Rows:

- each passage sentence, judged as an answer (what the tiny tier quotes): positive when it is in the
  gold paragraph and holds a gold answer;
- sentences a reader might write: the words around the gold answer in its sentence, and the gold
  answer alone (positive, judged on the gold passage); the same length of words from a sentence
  without the answer, that with the question's words grafted on ("The notice period is due on the
  third working day"), and the question restated (negative, judged on every passage).

SQuAD (English, the bundled MiniLM) and XQuAD's nine languages (the bundled multilingual-e5-small)
are split by article: two of the eight articles, drawn with the seed, are held out, and the figures
are measured on them, per language. The threshold is the highest that keeps answering-sentence
recall at 0.95 on the training split. ``--quick`` uses a sample (200 SQuAD questions, three XQuAD
languages) and prints its figures without writing the judge unless ``--out`` is given.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer.answerer import focus  # noqa: E402
from rag.answer.judge import FEATURES, JUDGE_FILE, JudgeModel  # noqa: E402
from rag.answer.verify import Verifier  # noqa: E402
from rag.apps.evaluation import corpus_index, normalise_answer, read_jsonl  # noqa: E402
from rag.config import BUNDLED_EMBEDDER, BUNDLED_MULTILINGUAL_EMBEDDER, Settings  # noqa: E402
from rag.service import Rag  # noqa: E402
from rag.text.analysis import is_unspaced  # noqa: E402
from rag.text.spans import content_word_forms  # noqa: E402

LANGUAGES = ("en", "de", "es", "zh", "ru", "ar", "hi", "vi", "tr")
QUICK_LANGUAGES = ("de", "zh", "ar")
# questions asked across languages: (the question's language, the documents')
ACROSS = (("en", "de"), ("en", "zh"), ("de", "en"), ("zh", "en"), ("en", "ar"), ("es", "ru"))
QUICK_ACROSS = (("en", "de"),)
# signals whose direction is known: more support or coverage never lowers the probability, a span
# further below the best evidence never raises it (the trees then hold where the data is thin)
MONOTONIC = {
    "sentence_span": 1, "question_span": 1, "lexical": 1, "novel": 1, "coverage": 1, "span_coverage": 1,
    "rare_coverage": 1, "passage_rare_coverage": 1, "passage_similarity": 1, "kind_sentence": 1, "kind_span": 1,
    "span_gap": -1, "similarity_gap": -1, "span_rank": -1, "restates": -1,
}  # fmt: skip
MAX_FALSE_REFUSALS = 0.05  # of questions whose answer was retrieved
VERSION = "judge-1"


class CachedEmbedder:
    """An embedder that embeds each text once: passage sentences recur across questions."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self._documents: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def _cached(self, texts: list[str], cache: dict[str, np.ndarray], embed: object) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            for text, vector in zip(missing, embed(missing)):  # type: ignore[operator]
                cache[text] = vector
        return np.asarray([cache[t] for t in texts])

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._cached(texts, self._documents, self._inner.embed_documents)  # type: ignore[attr-defined]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._cached(texts, self._queries, self._inner.embed_queries)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Tag:
    """Where rows come from: language, article (the split is by article), and question."""

    lang: str
    article: str
    held_out: bool
    question: str


@dataclass
class Rows:
    """Signals and labels, each row with its tag and kind: "passage" (a passage sentence judged as
    an answer), "removed" (the same, with the gold passage taken out of the retrieval), "written"."""

    x: list[np.ndarray] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)

    def add(self, rows: np.ndarray, label: int, tag: Tag, kind: str) -> None:
        for row in np.atleast_2d(rows):
            self.x.append(row)
            self.y.append(label)
            self.tags.append(tag)
            self.kind.append(kind)

    def column(self, name: str) -> np.ndarray:
        return np.asarray([getattr(t, name) for t in self.tags])


class _NoJudge(JudgeModel):
    """Signals are measured before there is a judge: every probability is 0."""

    def probability(self, rows: np.ndarray) -> np.ndarray:
        return np.zeros(len(np.atleast_2d(rows)))


NO_JUDGE = _NoJudge.from_trees([], 0.0, 1.0, "none")


def train(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[list[dict[str, list[float]]], float]:
    """Gradient-boosted trees on the signals: (the trees as node lists, the baseline log-odds)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    monotonic = [MONOTONIC.get(name, 0) for name in FEATURES]
    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.1, max_leaf_nodes=15, l2_regularization=1.0, monotonic_cst=monotonic, random_state=seed
    )
    model.fit(x, y)
    trees = []
    for (predictor,) in model._predictors:  # one predictor per boosting round (binary)
        nodes = predictor.nodes
        trees.append(
            {
                "feature": nodes["feature_idx"].tolist(),
                "split": [round(float(v), 6) for v in nodes["num_threshold"]],
                "left": nodes["left"].tolist(),
                "right": nodes["right"].tolist(),
                "leaf": [int(v) for v in nodes["is_leaf"]],
                "value": [round(float(v), 6) for v in nodes["value"]],
                "depth": nodes["depth"].tolist(),
            }
        )
    return trees, float(np.ravel(model._baseline_prediction)[0])


def _contains(text: str, golds: list[str]) -> bool:
    norm = normalise_answer(text)
    return any(g and normalise_answer(g) in norm for g in golds)


def _tokens(text: str) -> list[str]:
    """Words, or characters in a script written without spaces."""
    return list(text) if is_unspaced(text.replace(" ", "")[:20]) else text.split()


def _join(tokens: list[str], like: str) -> str:
    return "".join(tokens) if is_unspaced(like.replace(" ", "")[:20]) else " ".join(tokens)


def _window(sentence: str, answer: str, width: int) -> str | None:
    """The words of ``sentence`` around ``answer`` (``width`` either side), or None when absent."""
    at = sentence.find(answer)
    if at < 0:
        return None
    before, after = _tokens(sentence[:at]), _tokens(sentence[at + len(answer) :])
    tokens = before[-width:] + [answer] + after[:width]
    return _join(tokens, sentence).strip(" ,;")


def _slice(sentence: str, size: int, rng: random.Random) -> str:
    tokens = _tokens(sentence)
    if len(tokens) <= size:
        return sentence
    at = rng.randrange(0, len(tokens) - size)
    return _join(tokens[at : at + size], sentence)


def _written(
    question: str, gold_sentence: str, answer: str, others: list[str], elsewhere: list[tuple[str, str]], rng: random.Random
) -> tuple[list[str], list[str]]:
    """(sentences a reader might write that answer, and ones that do not). ``elsewhere`` holds
    (gold sentence, answer) pairs of other questions: their words are not in these passages."""
    positives, negatives = [], []
    window = _window(gold_sentence, answer, rng.choice((3, 6, 10)))
    if window:
        positives.append(window + ".")
    positives.append(answer.strip() + ".")
    width = len(_tokens(window or answer)) + 1
    topic = " ".join(list(content_word_forms(question).values())[:3])
    for other in rng.sample(others, min(2, len(others))):
        piece = _slice(other, width, rng)
        negatives.append(piece + ".")  # true, but not the answer
        negatives.append(f"{topic} {piece}.")  # the question's subject grafted onto another fact
    if elsewhere:
        foreign_sentence, foreign_answer = rng.choice(elsewhere)
        negatives.append(_slice(foreign_sentence, width, rng) + ".")  # in none of the passages
        if window and foreign_answer not in window:
            negatives.append(window.replace(answer, foreign_answer) + ".")  # the answer swapped for another
    negatives.append(question.rstrip(" ?？؟") + ".")
    return positives, negatives


def collect(
    rows: Rows,
    folder: Path,
    embedder_name: str,
    lang: str,
    held_articles: set[str],
    limit: int | None,
    seed: int,
    work: Path,
    asked_in: Path | None = None,
) -> int:
    """Add the rows of one QA folder's questions; returns how many questions were used. With
    ``asked_in`` (another language's folder of the same questions) the questions are that folder's
    and the documents this one's: a question asked across languages, judged on passage rows only
    (the gold answers are this folder's, in the documents' language)."""
    settings = Settings(index_dir=work / folder.name, embedder=embedder_name, offline=True, answer_mode="extract")
    eval_rag, sources = corpus_index(folder, settings, Rag(settings))
    retriever = eval_rag.retriever()
    embedder = CachedEmbedder(retriever.embedder)
    items = read_jsonl(folder, "qa.jsonl")
    if asked_in is not None:
        asked = {str(q["id"]): str(q["question"]) for q in read_jsonl(asked_in, "qa.jsonl")}
        items = [item | {"question": asked[str(item["id"])]} for item in items if str(item["id"]) in asked]
    rng = random.Random(seed)
    if limit:
        items = rng.sample(items, min(limit, len(items)))
    elsewhere: list[tuple[str, str, str]] = []  # earlier questions' gold paragraph, sentence and answer
    for item in items:
        gold_docs = {str(d) for d in item["doc_ids"]}
        article = next(iter(gold_docs)).rsplit("_", 1)[0]
        tag = Tag(lang, article, article in held_articles, f"{lang}:{item['id']}")
        question, golds = str(item["question"]), [str(a) for a in item["answers"]]
        found = retriever.retrieve(question, top_k=settings.top_k + 3)
        gold = [sources.get(h.chunk.source) in gold_docs for h in found.hits]
        hits = focus(replace(found, hits=found.hits[: settings.top_k]), settings.relative_cutoff).hits
        verifier = Verifier(hits, question, embedder, NO_JUDGE, term_weight=retriever.idf)  # type: ignore[arg-type]
        gold_n = [n for n, h in enumerate(hits, 1) if sources.get(h.chunk.source) in gold_docs]
        gold_sentence, others = _passage_rows(rows, verifier, gold_n, golds, tag, "passage")
        without = [h for h, g in zip(found.hits, gold) if not g][: settings.top_k]
        if without:  # the same question of an index without its gold passage: nothing answers
            unanswerable = focus(replace(found, hits=without), settings.relative_cutoff).hits
            _passage_rows(rows, Verifier(unanswerable, question, embedder, NO_JUDGE, term_weight=retriever.idf), [], golds, tag, "removed")  # type: ignore[arg-type]
        if gold_sentence is not None and asked_in is None:
            answer = next((g for g in golds if g in gold_sentence), golds[0])
            retrieved = {sources.get(h.chunk.source) for h in found.hits}
            far = [(sentence, said) for doc, sentence, said in elsewhere[-50:] if doc not in retrieved]
            _written_rows(rows, verifier, question, gold_sentence, answer, others, far, gold_n[0], tag, rng)
            elsewhere.append((next(iter(gold_docs)), gold_sentence, answer))
    return len(items)


def _passage_rows(rows: Rows, verifier: Verifier, gold_n: list[int], golds: list[str], tag: Tag, kind: str) -> tuple[str | None, list[str]]:
    """Every passage sentence judged as an answer; returns (the first gold sentence, the others)."""
    spans = verifier.span_rows()
    gold_sentence, others = None, []
    for j, (i, start, end) in enumerate(verifier.spans):
        text = verifier.hits[i].chunk.text[start:end]
        answering = (i + 1) in gold_n and _contains(text, golds)
        if not answering and _contains(text, golds):
            continue  # the answer's words stand elsewhere too: neither clearly right nor wrong
        rows.add(spans[j], int(answering), tag, kind)
        if answering and gold_sentence is None:
            gold_sentence = text
        elif not answering:
            others.append(text)
    return gold_sentence, others


def _written_rows(
    rows: Rows,
    verifier: Verifier,
    question: str,
    gold_sentence: str,
    answer: str,
    others: list[str],
    elsewhere: list[tuple[str, str]],
    gold: int,
    tag: Tag,
    rng: random.Random,
) -> None:
    """Sentences a reader might write: the answering ones judged on the gold passage, the others on every passage."""
    positives, negatives = _written(question, gold_sentence, answer, others, elsewhere, rng)
    for sentence in positives:
        rows.add(verifier.sentence_rows(sentence, gold)[1], 1, tag, "written")
    for sentence in negatives:
        for n in range(1, len(verifier.hits) + 1):
            rows.add(verifier.sentence_rows(sentence, n)[1], 0, tag, "written")


def out_of_fold(x: np.ndarray, y: np.ndarray, articles: np.ndarray, seed: int) -> np.ndarray:
    """Each training row's probability from trees trained without its article (three folds of
    articles): the threshold is read from these, not from rows the trees have seen."""
    names = sorted(set(articles))
    random.Random(seed).shuffle(names)
    p = np.zeros(len(y))
    for k in range(3):
        fold = np.isin(articles, names[k::3])
        trees, baseline = train(x[~fold], y[~fold], seed)
        p[fold] = JudgeModel.from_trees(trees, baseline, 1.0, VERSION).probability(x[fold])
    return p


def _pr(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    kept = p >= threshold
    tp = float((kept & (y == 1)).sum())
    precision = tp / max(kept.sum(), 1)
    recall = tp / max((y == 1).sum(), 1)
    return {"precision": round(precision, 3), "recall": round(recall, 3), "positives": int((y == 1).sum()), "rows": len(y)}


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(p)
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return round(float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / max(n_pos * n_neg, 1)), 4)


def best_scores(p: np.ndarray, rows: Rows, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per question under ``mask``: (the best passage sentence's probability with every passage,
    for questions a gold sentence was retrieved for; the best without the gold passage)."""
    kind, y, question = np.asarray(rows.kind), np.asarray(rows.y), rows.column("question")
    answerable, removed = {}, {}
    for k in np.flatnonzero(mask):
        q = question[k]
        if kind[k] == "passage":
            answerable[q] = max(answerable.get(q, 0.0), p[k])
        elif kind[k] == "removed":
            removed[q] = max(removed.get(q, 0.0), p[k])
    has_gold = {question[k] for k in np.flatnonzero(mask & (y == 1) & (kind == "passage"))}
    return np.asarray([v for q, v in answerable.items() if q in has_gold]), np.asarray(list(removed.values()))


def choose_threshold(p: np.ndarray, rows: Rows, mask: np.ndarray) -> float:
    """The operating point, from out-of-fold probabilities: the highest threshold at which at most
    ``MAX_FALSE_REFUSALS`` of the questions a gold sentence was retrieved for find no sentence."""
    answerable, _ = best_scores(p, rows, mask)
    return float(np.quantile(answerable, MAX_FALSE_REFUSALS, method="lower"))


def figures_at(p: np.ndarray, rows: Rows, mask: np.ndarray, threshold: float) -> dict[str, object]:
    """Sentence precision and recall (passage sentences and written ones), and per question the
    share refused with the gold passage retrieved and without it."""
    y, kind = np.asarray(rows.y), np.asarray(rows.kind)
    sentences = mask & (kind != "removed")
    answerable, removed = best_scores(p, rows, mask)
    return {
        **_pr(p[sentences], y[sentences], threshold),
        "auc": _auc(p[sentences], y[sentences]),
        "written": _pr(p[sentences & (kind == "written")], y[sentences & (kind == "written")], threshold),
        "passage": _pr(p[sentences & (kind == "passage")], y[sentences & (kind == "passage")], threshold),
        "false_refusals": round(float((answerable < threshold).mean()), 3) if len(answerable) else None,
        "refusals_gold_removed": round(float((removed < threshold).mean()), 3) if len(removed) else None,
        "questions": len(answerable),
    }


def report(model: JudgeModel, rows: Rows) -> dict[str, object]:
    """Held-out figures at the operating point, in all and per language."""
    p, held, lang = model.probability(np.asarray(rows.x)), rows.column("held_out"), rows.column("lang")
    out = {"all": figures_at(p, rows, held, model.threshold)}
    for name in sorted(set(lang)):
        out[name] = figures_at(p, rows, held & (lang == name), model.threshold)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None, help="where the evaluation indexes go (default: a temporary folder)")
    parser.add_argument("--rows", type=Path, default=None, help="also save the measured rows here (.npz), to study them")
    args = parser.parse_args()
    started = time.perf_counter()
    eval_root = args.shared / "eval"
    articles = sorted({str(d["_id"]).rsplit("_", 1)[0] for d in read_jsonl(eval_root / "squad-dev8", "corpus.jsonl")})
    held_articles = set(random.Random(args.seed).sample(articles, 2))
    rows = Rows()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        questions = {
            "squad": collect(
                rows, eval_root / "squad-dev8", BUNDLED_EMBEDDER, "squad-en", held_articles, 200 if args.quick else None, args.seed, work
            )
        }
        xquad = eval_root / "xquad-dev8"
        for lang in QUICK_LANGUAGES if args.quick else LANGUAGES:
            questions[lang] = collect(rows, xquad / lang, BUNDLED_MULTILINGUAL_EMBEDDER, lang, held_articles, None, args.seed, work)
        for asked, documents in QUICK_ACROSS if args.quick else ACROSS:  # a question in one language, documents in another
            name = f"{asked}>{documents}"
            questions[name] = collect(
                rows, xquad / documents, BUNDLED_MULTILINGUAL_EMBEDDER, name, held_articles, None, args.seed, work, asked_in=xquad / asked
            )
    x, y, held = np.asarray(rows.x), np.asarray(rows.y), rows.column("held_out")
    if args.rows is not None:
        np.savez(args.rows, x=x, y=y, held=held, lang=rows.column("lang"), kind=np.asarray(rows.kind), question=rows.column("question"))
    trees, baseline = train(x[~held], y[~held], args.seed)
    oof = np.zeros(len(y))
    oof[~held] = out_of_fold(x[~held], y[~held], rows.column("article")[~held], args.seed)
    threshold = choose_threshold(oof, rows, ~held)
    model = JudgeModel.from_trees(trees, baseline, threshold, VERSION)
    figures = {
        "seed": args.seed,
        "quick": args.quick,
        "held_out_articles": sorted(held_articles),
        "questions": questions,
        "train_rows": int((~held).sum()),
        "threshold": round(threshold, 4),
        "training_out_of_fold": figures_at(oof, rows, ~held, threshold),
        "held_out": report(model, rows),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = args.out if args.out is not None else (None if args.quick else JUDGE_FILE)
    if out is not None:
        document = {
            "version": VERSION,
            "features": list(FEATURES),
            "threshold": round(threshold, 4),
            "baseline": baseline,
            "trained_on": figures,
            "trees": trees,
        }
        out.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
