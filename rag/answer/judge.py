"""The answer judge: the probability that a sentence answers the question and is supported by a
passage span, learned from data.

It is a small gradient-boosted tree ensemble over a few signals ``rag.answer.verify.Verifier``
measures for every (question, sentence, span): the embedder's question–sentence, sentence–span and question–span
similarities (on the reference scale, so any embedder reads alike), how much of the sentence and of
what it adds to the question the passage holds, how much of the question the sentence covers, how
the span ranks against the best evidence, and whether the sentence holds the kind of answer asked
for. ``scripts/train_judge.py`` trains and calibrates it on SQuAD and XQuAD (a seed, and the shared
folder's data only) and writes ``judge.json`` beside this file, with its held-out figures. It is the
one place a sentence is kept or left out; the typed fact checks (``rag.answer.facts``) stand beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rag.errors import ModelError

JUDGE_FILE = Path(__file__).with_name("judge.json")

# the signals, in the model's order (``Verifier.signals`` measures them)
FEATURES = (
    "question_sentence",  # similarity of the question and the sentence
    "sentence_span",  # similarity of the sentence and its best-supporting span
    "question_span",  # similarity of the question and that span
    "lexical",  # share of the sentence's content words in the passage
    "novel",  # share of the words it adds to the question in the passage (0 when it adds none)
    "restates",  # 1 when it adds no word to a question that asks for something (or is itself a question)
    "coverage",  # share of the question's words (by weight) in the sentence
    "span_coverage",  # the same for the span and its passage
    "span_gap",  # how far the span's evidence score lies below the best evidence's
    "similarity_gap",  # how far the span's similarity to the question lies below the best span's
    "span_rank",  # log of the span's rank among all passage sentences by evidence score (0: the best)
    "passage_rank",  # log of the passage's retrieval rank (0: the first)
    "rare_coverage",  # weight of the rarest question word the sentence holds, over the rarest word's weight
    "passage_rare_coverage",  # the same for the passage with its heading
    "passage_similarity",  # the retriever's similarity of the passage to the question (0 when it has none)
    "new_names",  # log of the names and numbers the sentence holds that the question does not
    "kind_sentence",  # holds the kind of answer asked for: +1, lacks it: -1, cannot tell: 0
    "kind_span",
    "length",  # log of the sentence's word count
    "open_question",  # the question asks for something (not yes/no)
    "across",  # the passage is in another language than the question
)


@dataclass(frozen=True)
class Verdict:
    """Whether a sentence is kept, on which passage span, with what probability, and why not."""

    kept: bool
    passage: int  # 1-based source number; 0 when no passage was judged
    start: int
    end: int
    probability: float
    reason: str = ""  # empty when kept; a fact check's reason, "restates-question", "off-topic" or "unsupported"


@dataclass(frozen=True)
class JudgeModel:
    """Boosted trees, flattened: node arrays for all trees, each tree's root, and the threshold."""

    baseline: float
    roots: np.ndarray  # index of each tree's root node
    feature: np.ndarray  # per node: the signal it splits on
    split: np.ndarray  # per node: go left when the signal is <= this
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray  # per node: whether it is a leaf
    value: np.ndarray  # per node: a leaf's contribution to the log-odds
    depth: int
    threshold: float
    version: str

    @classmethod
    def load(cls, path: Path = JUDGE_FILE) -> JudgeModel:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if tuple(raw["features"]) != FEATURES:
                raise ValueError(f"it was trained on other signals: {raw['features']}")
            return cls.from_trees(raw["trees"], float(raw["baseline"]), float(raw["threshold"]), str(raw["version"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelError(
                f"the answer judge {path} cannot be read: {err}", "reinstall rag, or rebuild it: python scripts/train_judge.py"
            ) from err

    @classmethod
    def from_trees(cls, trees: list[dict[str, list[float]]], baseline: float, threshold: float, version: str) -> JudgeModel:
        """A model from trees as ``scripts/train_judge.py`` writes them (node lists; children index
        within their tree)."""
        trees = trees or [{"feature": [0], "split": [0.0], "left": [0], "right": [0], "leaf": [1], "value": [0.0], "depth": [0]}]
        offsets = np.cumsum([0] + [len(t["feature"]) for t in trees])
        column = lambda name, dtype: np.concatenate([np.asarray(t[name], dtype=dtype) for t in trees])  # noqa: E731
        shift = np.concatenate([np.full(len(t["feature"]), offsets[k]) for k, t in enumerate(trees)])
        return cls(
            baseline,
            offsets[:-1].astype(np.int64),
            column("feature", np.int64),
            column("split", np.float64),
            column("left", np.int64) + shift,
            column("right", np.int64) + shift,
            column("leaf", bool),
            column("value", np.float64),
            int(max(max(t["depth"]) for t in trees)) + 1,
            threshold,
            version,
        )

    def with_threshold(self, threshold: float) -> JudgeModel:
        return replace(self, threshold=threshold)

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """The probability for each row of signals (in ``FEATURES`` order)."""
        x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        nodes = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        at = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            inner = ~self.leaf[nodes]
            if not inner.any():
                break
            go_left = x[at, self.feature[nodes]] <= self.split[nodes]
            nodes = np.where(inner, np.where(go_left, self.left[nodes], self.right[nodes]), nodes)
        z = self.baseline + self.value[nodes].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
