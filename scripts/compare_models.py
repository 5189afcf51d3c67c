"""Compare bundled models on grounded, cited answers over a SQuAD-style QA folder.

    python scripts/compare_models.py ../shared/eval/squad-dev8 --limit 40 --models bundled:smollm2,bundled:gemma3-270m

Prints one JSON object: per model, answer containment, citation precision (cited file is a gold
document), share of answers with a supported citation, extractive-fallback and refusal rates, latency.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.apps.evaluation import normalise_answer as normalise
from rag.config import Settings
from rag.service import Rag


def write_corpus(folder: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open() as handle:
        for line in handle:
            doc = json.loads(line)
            (target / f"{doc['_id']}.md").write_text(f"# {doc.get('title', '')}\n\n{doc['text']}\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--models", default="bundled:smollm2,bundled:gemma3-270m")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--extract", action="store_true", help="also score the extractive (no-LLM) mode")
    args = parser.parse_args()

    questions = [json.loads(line) for line in (args.folder / "qa.jsonl").open()]
    random.Random(args.seed).shuffle(questions)
    questions = questions[: args.limit]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(args.folder, corpus)
        base = Settings(index_dir=Path(tmp) / "index")
        if args.top_k:
            base = base.model_copy(update={"top_k": args.top_k})
        indexer = Rag(base)
        indexer.ingest([corpus])
        variants = [(m, {"model": m}) for m in args.models.split(",")]
        if args.extract:
            variants.append(("extractive", {"answer_mode": "extract"}))
        for model, update in variants:
            rag = Rag(base.model_copy(update=update), embedder=indexer.embedder)
            contained, precise, cited_total, supported, extractive, refused, latency = 0, 0, 0, 0, 0, 0, []
            for item in questions:
                answer = rag.ask(item["question"])
                latency.append(answer.latency_s)
                gold_docs = set(item.get("doc_ids", []))
                if any(normalise(a) in normalise(answer.text) for a in item["answers"]):
                    contained += 1
                for c in answer.citations:
                    cited_total += 1
                    precise += Path(c.source).stem in gold_docs
                supported += any(c.supported for c in answer.citations)
                extractive += answer.mode == "extractive"
                refused += answer.refused
            n = len(questions)
            results[model] = {
                "questions": n,
                "containment": round(contained / n, 3),
                "citation_precision": round(precise / cited_total, 3) if cited_total else None,
                "answers_with_supported_citation": round(supported / n, 3),
                "extractive_fallback_rate": round(extractive / n, 3),
                "refusal_rate": round(refused / n, 3),
                "latency_p50_s": round(statistics.median(latency), 2),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
