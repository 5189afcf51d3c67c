"""Evaluation on public benchmark layouts: retrieval (BEIR) and question answering (SQuAD-style).

Each corpus document is ingested as one file named by its ``_id`` into an index of its own (kept
under the main index folder and reused while the corpus is unchanged); chunk hits collapse to their
document, best first, before scoring.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import re
import statistics
import string
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from rag.answer.retrieval import MODES, Retriever
from rag.config import Settings
from rag.errors import InputError
from rag.schema import EXTRACT_ONLY, Answer
from rag.service import Rag


def _open(folder: Path, name: str) -> Iterator[str]:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            opener = gzip.open if candidate.suffix == ".gz" else open
            with opener(candidate, "rt", encoding="utf-8") as handle:
                yield from handle
            return
    raise InputError(f"{folder} has no {name} (or {name}.gz)", "pass a BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/test.tsv")


def read_jsonl(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _open(folder, name) if line.strip()]


def read_qrels(folder: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(_open(folder, "qrels/test.tsv")):
        parts = line.rstrip("\n").split("\t")
        if n == 0 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header
        if len(parts) >= 3:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def corpus_index(folder: Path, settings: Settings, rag: Rag, exclude: frozenset[str] = frozenset()) -> tuple[Rag, dict[str, str]]:
    """An assistant over the corpus (minus ``exclude``d ids) in a dedicated index; returns it and
    source path → doc id."""
    corpus = [d for d in read_jsonl(folder, "corpus.jsonl") if str(d.get("_id")) not in exclude]
    # one index per corpus, embedder and chunking, so that tuning runs never mix their chunks
    key = [[d.get("_id") for d in corpus], rag.embedder.name, settings.chunk_tokens, settings.chunk_overlap]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]
    root = settings.index_dir / "eval" / f"{folder.resolve().name}-{digest}"
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    for doc in corpus:
        doc_id = str(doc["_id"])
        safe = re.sub(r"[^\w.-]", "_", doc_id)[:120] + "-" + hashlib.sha1(doc_id.encode()).hexdigest()[:6]
        path = docs / f"{safe}.md"
        body = (f"# {doc['title']}\n\n" if doc.get("title") else "") + str(doc.get("text", ""))
        if not path.exists() or path.read_text(encoding="utf-8") != body:
            path.write_text(body, encoding="utf-8")
        sources[str(path.resolve())] = doc_id
    eval_settings = settings.model_copy(update={"index_dir": root / "index"})
    eval_rag = Rag(eval_settings, embedder=rag.embedder, reranker=rag.reranker)
    eval_rag.ingest([docs])
    return eval_rag, sources


def ranked_docs(retriever: Retriever, query: str, mode: str, sources: dict[str, str], depth: int = 100) -> list[str]:
    out: list[str] = []
    for hit in retriever.retrieve(query, top_k=depth, mode=mode).hits:
        doc = sources.get(hit.chunk.source)
        if doc is not None and doc not in out:
            out.append(doc)
    return out


def retrieval_metrics(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
    gains = [relevant.get(d, 0) for d in ranked[:10]]
    dcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    positives = {d for d, g in relevant.items() if g > 0}
    first = next((i for i, d in enumerate(ranked[:10]) if d in positives), None)
    return {
        "ndcg@10": dcg / idcg if idcg else 0.0,
        "recall@10": len(positives & set(ranked[:10])) / len(positives) if positives else 0.0,
        "recall@100": len(positives & set(ranked[:100])) / len(positives) if positives else 0.0,
        "mrr@10": 1.0 / (first + 1) if first is not None else 0.0,
    }


def evaluate_retrieval(folder: Path, rag: Rag, modes: list[str]) -> dict[str, Any]:
    for mode in modes:
        if mode not in MODES:
            raise InputError(f"unknown retrieval variant '{mode}'", f"choose from {', '.join(MODES)}")
    eval_rag, sources = corpus_index(folder, rag.settings, rag)
    settings = eval_rag.settings.model_copy(update={"min_similarity": -1.0, "candidates": max(100, eval_rag.settings.candidates)})
    if "rerank" in modes and rag.reranker is None:
        raise InputError("the rerank variant needs a reranker", "pass --reranker NAME_OR_PATH (a cross-encoder)")
    retriever = eval_rag.retriever(settings)
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(folder, "queries.jsonl")}
    qrels = {q: r for q, r in read_qrels(folder).items() if q in queries}
    results: dict[str, Any] = {}
    for mode in modes:
        started = time.perf_counter()
        totals: Counter[str] = Counter()
        for qid, relevant in qrels.items():
            totals.update(retrieval_metrics(ranked_docs(retriever, queries[qid], mode, sources), relevant))
        n = len(qrels) or 1
        results[mode] = {k: round(v / n, 4) for k, v in totals.items()} | {"seconds": round(time.perf_counter() - started, 2)}
    return {
        "dataset": str(folder),
        "queries": len(qrels),
        "documents": len(sources),
        "variants": results,
        "settings": _settings_used(settings),
    }


def normalise_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction: str, gold: str) -> float:
    p, g = normalise_answer(prediction).split(), normalise_answer(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if not same:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def evaluate_qa(
    folder: Path,
    rag: Rag,
    *,
    limit: int | None,
    seed: int,
    chart: Path | None = None,
    unanswerable: bool = False,
    details: Path | None = None,
) -> dict[str, Any]:
    """Answer a sample of ``qa.jsonl``. With ``unanswerable`` the same questions are asked a second
    time of an index without their gold documents, where the right answer is a refusal."""
    items = read_jsonl(folder, "qa.jsonl")
    if any("conversation" in item for item in items):
        return evaluate_conversations(folder, rag, items, limit=limit, seed=seed, details=details)
    if limit is not None and limit < len(items):
        items = random.Random(seed).sample(items, limit)
    eval_rag, sources = corpus_index(folder, rag.settings, rag)
    report: dict[str, Any] = {"dataset": str(folder), "questions": len(items)}
    sink = details.open("w", encoding="utf-8") if details is not None else None
    report |= _qa_metrics(eval_rag, sources, items, sink, "answerable")
    report.pop("answered_with_gold")
    report["false_refusal_rate"] = report["refusal_rate"]
    if unanswerable:
        gold = frozenset(str(d) for item in items for d in item.get("doc_ids", []))
        if not gold:
            raise InputError("--unanswerable needs doc_ids in qa.jsonl", "add each question's gold corpus ids as doc_ids")
        blind_rag, blind_sources = corpus_index(folder, rag.settings, rag, exclude=gold)
        blind = _qa_metrics(blind_rag, blind_sources, items, sink, "unanswerable")
        report["unanswerable"] = {
            "documents_removed": len(gold),
            "refusal_rate": blind["refusal_rate"],
            "answered_rate": round(1 - blind["refusal_rate"], 4),
            # Other documents sometimes answer a question too (SQuAD articles repeat facts): answers
            # that still contain a gold answer are counted, and the refusal rate is also given without them.
            "answered_with_gold_from_other_documents": blind["answered_with_gold"],
            "refusal_rate_without_those": round(blind["refusal_rate"] * len(items) / max(1, len(items) - blind["answered_with_gold"]), 4),
            "latency_p50_s": blind["latency_p50_s"],
        }
        report["refusal_rate_unanswerable"] = blind["refusal_rate"]
    if sink is not None:
        sink.close()
        report["details"] = str(details)
    report["settings"] = _settings_used(eval_rag.settings) | {"limit": limit, "sample_seed": seed}
    if chart is not None:
        report["chart"] = str(_chart(report, chart))
    return report


def _qa_metrics(
    eval_rag: Rag, doc_of: dict[str, str], items: list[dict[str, Any]], sink: IO[str] | None = None, setting: str = ""
) -> dict[str, Any]:
    totals: dict[str, float] = defaultdict(float)
    latencies: list[float] = []
    retriever = eval_rag.retriever()
    for item in items:
        answer = eval_rag.ask(item["question"])
        latencies.append(answer.latency_s)
        gold_docs = {str(d) for d in item.get("doc_ids", [])}
        retrieved = {doc_of.get(h.chunk.source) for h in retriever.retrieve(item["question"]).hits} if gold_docs else set()
        for key, count in _qa_counts(item, answer, doc_of, gold_docs, retrieved).items():
            totals[key] += count
        stage = miss_stage(answer, _golds(item), bool(retrieved & gold_docs), answerable=setting != "unanswerable")
        if stage is not None:
            totals[f"miss_{stage}"] += 1
        if sink is not None:
            sink.write(json.dumps(_qa_detail(item, answer, doc_of, gold_docs, setting) | {"miss": stage}, ensure_ascii=False) + "\n")
            sink.flush()
    return _qa_summary(totals, len(items), latencies, eval_rag.settings.top_k)


STAGES = ("retrieval", "judge", "model", "resolution")


def _holds(text: str, golds: list[str]) -> bool:
    norm = normalise_answer(text)
    return any(normalise_answer(g) and normalise_answer(g) in norm for g in golds)


def miss_stage(answer: Answer, golds: list[str], gold_retrieved: bool, *, answerable: bool = True) -> str | None:
    """The one stage a missed question is put down to (None when it was not missed):

    - retrieval: the gold passage is not among the passages given;
    - judge: a sentence holding the answer was written but left out, the quote or refusal missed
      the retrieved answer; and, with the gold passage removed, any answer at all;
    - model: the answer is the model's own sentences, and it wrote none holding the answer.
    (A follow-up resolved wrongly is ``resolution``: ``evaluate_conversations`` tells it.)"""
    if not answerable:
        return None if answer.refused else "judge"
    if not answer.refused and _holds(answer.text, golds):
        return None
    if not gold_retrieved:
        return "retrieval"
    written = _model_claims(answer) if answer.model != EXTRACT_ONLY else []
    if any(_holds(c.text, golds) for c in written):
        return "judge"  # the model wrote it; it was left out, or something else was kept
    return "model" if answer.mode == "generated" else "judge"


def _golds(item: dict[str, Any]) -> list[str]:
    return [str(a) for a in item.get("answers", [])] or [""]


def _model_claims(answer: Answer) -> list[Any]:
    """The model's own sentences: an extractive answer appends one claim per quote it makes."""
    claims = answer.claims
    return claims[: len(claims) - len(answer.citations)] if answer.mode == "extractive" else claims


def _qa_counts(
    item: dict[str, Any], answer: Answer, doc_of: dict[str, str], gold_docs: set[str], retrieved: set[str | None]
) -> dict[str, float]:
    golds, text = _golds(item), answer.text
    has_gold = any(normalise_answer(g) and normalise_answer(g) in normalise_answer(text) for g in golds)
    claims = _model_claims(answer)
    counts: dict[str, float] = {
        "em": max(float(normalise_answer(text) == normalise_answer(g)) for g in golds),
        "f1": max(f1_score(text, g) for g in golds),
        "contained": has_gold,
        "refused": answer.refused,
        "answered_with_gold": has_gold and not answer.refused,
        "sentences": len(claims),
        "unsupported": sum(1 for c in claims if not c.supported),
        "rejected_supported": sum(1 for c in claims if not c.supported and c.reason in ("off-topic", "over-limit")),
        "generated": answer.mode == "generated",
    }
    if gold_docs:
        counts["cited"] = len(answer.citations)
        counts["cited_gold"] = sum(doc_of.get(c.source) in gold_docs for c in answer.citations)
        counts["recall_total"] = 1
        counts["recall_hits"] = bool(retrieved & gold_docs)
    return counts


def _qa_detail(item: dict[str, Any], answer: Answer, doc_of: dict[str, str], gold_docs: set[str], setting: str) -> dict[str, Any]:
    return {
        "setting": setting,
        "id": item.get("id"),
        "question": item["question"],
        "gold_answers": _golds(item),
        "gold_docs": sorted(gold_docs),
        "answer": answer.text,
        "mode": answer.mode,
        "refused": answer.refused,
        "model_refused": answer.model_refused,
        "refusal_reason": answer.refusal_reason,
        "answerability": answer.answerability,
        "cited_docs": [doc_of.get(c.source) for c in answer.citations],
        "claims": [{"text": c.text, "supported": c.supported, "support": c.support, "reason": c.reason} for c in answer.claims],
        "latency_s": answer.latency_s,
    }


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _qa_summary(c: dict[str, float], n_items: int, latencies: list[float], top_k: int) -> dict[str, Any]:
    n = n_items or 1
    answered = n_items - c["refused"]
    return {
        "exact_match": round(c["em"] / n, 4),
        "f1": round(c["f1"] / n, 4),
        "containment": round(c["contained"] / n, 4),
        "citation_precision": _share(c["cited_gold"], c["cited"]),
        "unsupported_sentence_share": _share(c["unsupported"], c["sentences"]),
        # model sentences a retrieved passage supports that were left out anyway (off-topic, over the limit)
        "rejected_supported": _share(c["rejected_supported"], c["sentences"]),
        # answered questions answered in the model's own words, not by a quote of the evidence
        "generated_share": _share(c["generated"], answered) if answered > 0 else None,
        f"retrieval_recall@{top_k}": _share(c["recall_hits"], c["recall_total"]),
        "refusal_rate": round(c["refused"] / n, 4),
        # each missed question put down to one stage (miss_stage), as a share of all the questions
        "misses_by_stage": {stage: round(c[f"miss_{stage}"] / n, 4) for stage in STAGES if c[f"miss_{stage}"]},
        "answered_with_gold": int(c["answered_with_gold"]),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(sorted(latencies)[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3) if latencies else None,
    }


def evaluate_conversations(
    folder: Path, rag: Rag, items: list[dict[str, Any]], *, limit: int | None, seed: int, details: Path | None
) -> dict[str, Any]:
    """Ask each conversation's turns in order, as follow-ups, and the same questions written to
    stand alone (``standalone``) each in a fresh conversation; compare the two. A turn whose
    ``answers`` is empty is one the documents do not answer: its right answer is a refusal."""
    conversations: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        conversations.setdefault(str(item.get("conversation", item.get("id"))), []).append(item)
    ids = sorted(conversations)
    if limit is not None and limit < len(ids):
        ids = sorted(random.Random(seed).sample(ids, limit))
    eval_rag, _ = corpus_index(folder, rag.settings, rag)
    sink = details.open("w", encoding="utf-8") if details is not None else None
    tallies = {"in_conversation": Counter[str](), "standalone": Counter[str]()}
    for cid in ids:
        turns = sorted(conversations[cid], key=lambda t: int(t.get("turn", 0)))
        earlier: list[str] = []
        for turn in turns:
            follow = eval_rag.resolve(turn["question"], earlier)
            answer = eval_rag.ask(follow)
            earlier.append(answer.query)
            standalone = eval_rag.ask(str(turn.get("standalone") or turn["question"]))
            golds = [str(a) for a in turn.get("answers", [])]
            for setting, got in (("in_conversation", answer), ("standalone", standalone)):
                verdict = _verdict(got, golds)
                missed_alone = _verdict(standalone, golds) not in ("correct_answer", "correct_refusal")
                resolved_wrong = setting == "in_conversation" and verdict not in ("correct_answer", "correct_refusal") and not missed_alone
                tallies[setting].update({verdict: 1, f"query_{got.query_method}": 1} | ({"miss_resolution": 1} if resolved_wrong else {}))
                if sink is not None:
                    sink.write(
                        json.dumps(
                            {
                                "setting": setting,
                                "id": turn.get("id"),
                                "conversation": cid,
                                "question": turn["question"],
                                "query": got.query,
                                "query_method": got.query_method,
                                "verdict": verdict,
                                "answer": got.text,
                                "refused": got.refused,
                                "refusal_reason": got.refusal_reason,
                                "gold_answers": turn.get("answers", []),
                                "latency_s": got.latency_s,
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                    sink.flush()
    if sink is not None:
        sink.close()
    report: dict[str, Any] = {"dataset": str(folder), "conversations": len(ids), "turns": sum(len(conversations[c]) for c in ids)}
    for setting, tally in tallies.items():
        report[setting] = dict(sorted(tally.items()))
    report["settings"] = _settings_used(eval_rag.settings) | {"limit": limit, "sample_seed": seed}
    return report


def _verdict(answer: Answer, golds: list[str]) -> str:
    """``correct_answer``, ``correct_refusal``, ``false_refusal``, or ``confidently_wrong`` (answered,
    cited, and not correct: the failure that matters most), or ``wrong_uncited``."""
    if answer.refused:
        return "false_refusal" if golds else "correct_refusal"
    text = normalise_answer(answer.text)
    if golds and any(normalise_answer(g) in text for g in golds):
        return "correct_answer"
    return "confidently_wrong" if answer.citations else "wrong_uncited"


def _chart(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        k
        for k in (
            "exact_match",
            "f1",
            "containment",
            "citation_precision",
            "unsupported_sentence_share",
            "false_refusal_rate",
            "refusal_rate_unanswerable",
        )
        if report.get(k) is not None
    ]
    keys += [k for k in report if k.startswith("retrieval_recall@") and report[k] is not None]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(keys, [report[k] for k in keys], color="#4c72b0")
    ax.set_ylim(0, 1)
    ax.set_title(f"rag eval qa: {Path(report['dataset']).name}, {report['questions']} questions")
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _settings_used(settings: Settings) -> dict[str, Any]:
    keys = (
        "embedder",
        "model",
        "answer_mode",
        "top_k",
        "candidates",
        "rrf_k",
        "min_similarity",
        "relative_cutoff",
        "chunk_tokens",
        "chunk_overlap",
        "n_ctx",
        "max_tokens",
        "temperature",
        "seed",
    )
    return {k: getattr(settings, k) for k in keys}
