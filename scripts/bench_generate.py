"""Generation through rag's LLM layer against bare llama-cpp-python, same prompts, one run.

    python scripts/bench_generate.py [--model bundled:smollm2] [--questions 8] [--max-tokens 64]

The prompts are the real ones `rag ask` sends (the bundled sample corpus is indexed and each
question's sources packed). Both sides load the same GGUF in this process, greedy, same repeat
penalty. Two workloads:

  ask     question after question (the instructions are a shared prefix each time);
  chat    each question follows a follow-up rewrite prompt (the chat page's flow), which takes
          the model's KV cache away from the instructions.

Bare llama-cpp-python reuses only the prefix the previous prompt left; rag also keeps a snapshot
of the system-prompt prefix. Prints JSON: time to first token (p50) and tokens/s of each side,
and the ratios (rag / bare).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer.answerer import STOP, focus  # noqa: E402
from rag.answer.llm import LlamaCppLLM, resolve_model  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.sample import QUESTIONS, sample_dir  # noqa: E402
from rag.service import Rag  # noqa: E402


def _text(chunk: object) -> str:
    if hasattr(chunk, "text"):  # rag's GenerationChunk
        return chunk.text  # type: ignore[attr-defined]
    return (chunk["choices"][0].get("delta") or {}).get("content") or ""  # type: ignore[index]


def timed(stream) -> tuple[float, int, float]:
    """(seconds to the first token, tokens, seconds from first token to the end)."""
    started = time.perf_counter()
    first = None
    tokens = 0
    for chunk in stream:
        if not _text(chunk):
            continue  # role-only and finish-only chunks carry no token
        tokens += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    first = first or end
    return first - started, tokens, end - first


def summary(runs: list[tuple[float, int, float]]) -> dict[str, float]:
    tokens = sum(r[1] - 1 for r in runs)
    decode_s = sum(r[2] for r in runs)
    return {
        "ttft_p50_s": round(statistics.median(r[0] for r in runs), 4),
        "tokens_per_s": round(tokens / decode_s, 2) if decode_s else 0.0,
        "tokens": sum(r[1] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bundled:smollm2")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args()

    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=Path(tmp) / "index", model=args.model, n_ctx=args.n_ctx)
        rag = Rag(settings)
        rag.ingest([sample_dir()])
        path = resolve_model(settings.model, settings)
        ours = LlamaCppLLM(path, settings)
        bare = llama_cpp.Llama(model_path=str(path), n_ctx=args.n_ctx, n_gpu_layers=ours.n_gpu_layers, seed=0, verbose=False)
        retriever = rag.retriever()
        questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.questions)]
        prompts = []
        for q in questions:
            packed = rag.answerer.pack(ours, q, focus(retriever.retrieve(q), settings.relative_cutoff), args.max_tokens)
            rewrite = [
                {"role": "user", "content": rag.prompts.render("condense", history=f"User: {q}\nAssistant: ...", question="And why?")}
            ]
            prompts.append((packed.messages, rewrite))
        params = {"max_tokens": args.max_tokens, "temperature": 0.0, "repeat_penalty": settings.repeat_penalty}

        def run_ours(messages):
            return ours.generate(messages, max_tokens=args.max_tokens, temperature=0.0, seed=0, stop=STOP)

        def run_bare(messages):
            return bare.create_chat_completion(messages=messages, stream=True, seed=0, stop=STOP, **params)

        for runner in (run_ours, run_bare):  # warm-up: both sides start with a loaded, used model
            timed(runner(prompts[0][1]))
        report: dict[str, object] = {"model": path.name, "questions": len(questions), "max_tokens": args.max_tokens}
        for workload in ("ask", "chat"):
            results: dict[str, list[tuple[float, int, float]]] = {"rag": [], "bare": []}
            for messages, rewrite in prompts:
                for name, runner in (("rag", run_ours), ("bare", run_bare)):
                    if workload == "chat":
                        timed(runner(rewrite))  # the follow-up rewrite, not measured
                    results[name].append(timed(runner(messages)))
            ours_s, bare_s = summary(results["rag"]), summary(results["bare"])
            report[workload] = {
                "rag": ours_s,
                "bare": bare_s,
                "throughput_ratio": round(ours_s["tokens_per_s"] / bare_s["tokens_per_s"], 3) if bare_s["tokens_per_s"] else None,
                "ttft_ratio": round(ours_s["ttft_p50_s"] / bare_s["ttft_p50_s"], 3) if bare_s["ttft_p50_s"] else None,
            }
        report["prefix_snapshot_hits"] = ours.prefix_hits
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
