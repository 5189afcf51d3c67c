"""Calibrate the verification thresholds (support per sentence) and the answerability threshold.

    python scripts/calibrate_verification.py ../shared/eval/squad-dev8 [--sample 300] [--index /tmp/calib-index]

Support: for sampled SQuAD questions, a claim is written the way small models answer, by restating
the question with the answer in place of its question word ("What is the atomic number of oxygen?"
+ "8" -> "8 is the atomic number of oxygen"). Labelled pairs:
  supported      the true claim against its gold passage;
  unsupported    the claim with another question's answer from the same article (a wrong fact)
                 against the gold passage, and the true claim against another passage of the same
                 article (right topic, wrong source).
The thresholds chosen give the highest recall whose precision is at least --precision.

Answerability: the same questions are retrieved from an index with and without their gold passages
(the `rag eval qa --unanswerable` setting); the threshold on the best evidence sentence's score is
the one refusing most unanswerable questions with at most --max-false-refusal of answerable ones.
Prints one JSON object; the defaults in rag/config.py come from it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer.answerer import focus  # noqa: E402
from rag.answer.verify import Thresholds, Verifier  # noqa: E402
from rag.apps.evaluation import corpus_index, read_jsonl  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.schema import Chunk, Hit  # noqa: E402
from rag.service import Rag  # noqa: E402

_WH = re.compile(r"^\s*(what|which|who|whom|whose|when|where|how many|how much|how long|how|why)\b", re.IGNORECASE)


def declarative(question: str, answer: str) -> str:
    body = question.strip().rstrip("?")
    if _WH.search(body):
        return _WH.sub(answer, body, count=1) + "."
    return f"{body}: {answer}."


def _hit(doc_id: str, text: str) -> Hit:
    return Hit(Chunk(doc_id, text, doc_id, doc_id, None, "", 0, len(text), 0), 1.0)


def _article(doc_id: str) -> str:
    return doc_id.rsplit("_", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-calibrate-index"))
    parser.add_argument("--precision", type=float, default=0.95)
    parser.add_argument("--max-false-refusal", type=float, default=0.08)
    parser.add_argument("--support-only", action="store_true", help="Skip the answerability part.")
    args = parser.parse_args()

    settings = Settings(index_dir=args.index, offline=True)
    rag = Rag(settings)
    embedder = rag.embedder
    corpus = {str(d["_id"]): d["text"] for d in read_jsonl(args.folder, "corpus.jsonl")}
    items = [q for q in read_jsonl(args.folder, "qa.jsonl") if q.get("doc_ids") and q.get("answers")]
    rng = random.Random(args.seed)
    items = rng.sample(items, min(args.sample, len(items)))
    by_article: dict[str, list[dict]] = {}
    for q in read_jsonl(args.folder, "qa.jsonl"):
        if q.get("doc_ids"):
            by_article.setdefault(_article(q["doc_ids"][0]), []).append(q)

    loose = Thresholds(0.0, 0.0, -1.0)
    rows: list[tuple[bool, object]] = []
    for item in items:
        gold = str(item["doc_ids"][0])
        answer = item["answers"][0]
        others = [d for d in corpus if _article(d) == _article(gold) and d != gold]
        wrong = [
            q["answers"][0] for q in by_article[_article(gold)] if q["answers"] and q["answers"][0].lower() not in corpus[gold].lower()
        ]
        hits = [_hit(gold, corpus[gold])] + ([_hit(others[0], corpus[rng.choice(others)])] if others else [])
        verifier = Verifier(hits, item["question"], embedder, loose)
        claim = declarative(item["question"], answer)
        vector = embedder.embed_documents([claim])[0]
        rows.append((True, verifier.support(claim, 1, vector)))
        if wrong:
            false_claim = declarative(item["question"], rng.choice(wrong))
            rows.append((False, verifier.support(false_claim, 1, embedder.embed_documents([false_claim])[0])))
        if len(hits) > 1:
            rows.append((False, verifier.support(claim, 2, vector)))

    best = None
    by_semantic: dict[float, dict] = {}
    grid = itertools.product([0.5, 0.6, 0.7, 0.75, 0.8, 0.9], [0.0, 0.5, 0.67, 0.75, 1.0], [-1.0, 0.3, 0.4, 0.5, 0.6, 0.7])
    for lexical, novel, semantic in grid:
        t = Thresholds(lexical, novel, semantic)
        tp = sum(1 for label, s in rows if label and s.passes(t))
        fp = sum(1 for label, s in rows if not label and s.passes(t))
        positives = sum(1 for label, _ in rows if label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / positives if positives else 0.0
        row = {"lexical": lexical, "novel": novel, "semantic": semantic, "precision": round(precision, 4), "recall": round(recall, 4)}
        if precision >= args.precision and (best is None or recall > best["recall"]):
            best = row
        if precision >= args.precision and recall > by_semantic.get(semantic, {"recall": -1})["recall"]:
            by_semantic[semantic] = row
    current = Thresholds(settings.support_lexical, settings.support_novel, settings.support_semantic)
    tp = sum(1 for label, s in rows if label and s.passes(current))
    fp = sum(1 for label, s in rows if not label and s.passes(current))
    support_report = {
        "pairs": len(rows),
        "supported_pairs": sum(1 for label, _ in rows if label),
        "chosen": best,
        "best_per_semantic_threshold": list(by_semantic.values()),
        "current_defaults": {
            "lexical": current.lexical,
            "novel": current.novel,
            "semantic": current.semantic,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / max(1, sum(1 for label, _ in rows if label)), 4),
        },
    }

    if args.support_only:
        print(json.dumps({"questions": len(items), "support": support_report}))
        return

    # answerability: gold passages present vs removed
    full_rag, _ = corpus_index(args.folder, settings, rag)
    gold_ids = frozenset(str(d) for item in items for d in item["doc_ids"])
    blind_rag, _ = corpus_index(args.folder, settings, rag, exclude=gold_ids)

    def score(target: Rag, question: str) -> float:
        retrieval = target.retriever().retrieve(question)
        if not retrieval.hits:
            return -1.0  # refused by the similarity gate already
        hits = focus(retrieval, settings.relative_cutoff).hits
        return Verifier(hits, question, embedder, loose, term_weight=target.index.idf).answerability()

    answerable = [score(full_rag, q["question"]) for q in items]
    unanswerable = [score(blind_rag, q["question"]) for q in items]
    choice = None
    for t in sorted(set(round(x, 3) for x in answerable + unanswerable if x >= 0)):
        false_refusal = sum(1 for x in answerable if x < t) / len(answerable)
        refusal = sum(1 for x in unanswerable if x < t) / len(unanswerable)
        if false_refusal <= args.max_false_refusal:
            choice = {"min_answerability": t, "false_refusal": round(false_refusal, 4), "refusal_unanswerable": round(refusal, 4)}
    current_t = settings.min_answerability
    print(
        json.dumps(
            {
                "questions": len(items),
                "support": support_report,
                "answerability": {
                    "chosen": choice,
                    "current_default": {
                        "min_answerability": current_t,
                        "false_refusal": round(sum(1 for x in answerable if x < current_t) / len(answerable), 4),
                        "refusal_unanswerable": round(sum(1 for x in unanswerable if x < current_t) / len(unanswerable), 4),
                    },
                },
            }
        )
    )


if __name__ == "__main__":
    main()
