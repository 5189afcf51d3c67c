"""Keyword retrieval: BM25 over the terms of rag.text.analysis (stemmed in each text's language), in
immutable segments, updated incrementally.

Layout under ``index/bm25/``::

    meta.json            generation, segment names and each segment's deleted positions (commit point)
    seg-000001/          one immutable segment: ids.txt, vocab.txt (sorted stems), doc_len.npy,
                         indptr.npy / docs.npy / tf.npy (postings, CSR by term)

Ingesting a file adds one small segment and marks the file's old chunks deleted; nothing is rebuilt.
Segments are merged (from their postings, not from text) when there are too many or too many
deletions. Statistics (document count, average length, document frequency) are computed over live
documents at query time, so scores equal those of a clean build. Segment arrays are memory-mapped:
opening an index reads only ``meta.json``.
"""

from __future__ import annotations

import json
import shutil
from bisect import bisect_left
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rag.index.manifest import atomic_write
from rag.text import analysis

K1 = 1.5
B = 0.75
MAX_SEGMENTS = 8
MAX_DELETED_SHARE = 0.3
FORMAT = 3  # 3: terms from rag.text.analysis (any language)


def _idf(df: np.ndarray, total_docs: int) -> np.ndarray:
    """Lucene's BM25 inverse document frequency (never negative)."""
    return np.log(1.0 + (total_docs - df + 0.5) / (df + 0.5))


@dataclass
class Segment:
    name: str
    ids: list[str]
    vocab: list[str]  # sorted
    doc_len: np.ndarray  # int32, per document
    indptr: np.ndarray  # int64, len(vocab) + 1
    docs: np.ndarray  # int32 document positions, grouped by term
    tf: np.ndarray  # uint16 term frequencies, parallel to docs
    deleted: set[int] = field(default_factory=set)
    saved: bool = False
    _live: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def live(self) -> np.ndarray:
        if self._live is None or len(self._live) != self.size:
            live = np.ones(self.size, dtype=bool)
            if self.deleted:
                live[np.fromiter(self.deleted, dtype=np.int64)] = False
            self._live = live
        return self._live

    def mark_deleted(self, positions: Iterable[int]) -> None:
        self.deleted.update(positions)
        self._live = None

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Live (document positions, term frequencies) for one term."""
        row = bisect_left(self.vocab, term)
        if row == len(self.vocab) or self.vocab[row] != term:
            return _EMPTY_I, _EMPTY_F
        lo, hi = int(self.indptr[row]), int(self.indptr[row + 1])
        docs = np.asarray(self.docs[lo:hi])
        tf = np.asarray(self.tf[lo:hi], dtype=np.float32)
        if self.deleted:
            keep = self.live[docs]
            return docs[keep], tf[keep]
        return docs, tf

    def live_length(self) -> tuple[int, int]:
        if not self.deleted:
            return self.size, int(self.doc_len.sum())
        live = self.live
        return int(live.sum()), int(self.doc_len[live].sum())

    # building -------------------------------------------------------------------
    @classmethod
    def from_term_counts(cls, name: str, ids: list[str], counts: list[Counter[str]]) -> Segment:
        vocab = sorted({t for c in counts for t in c})
        row_of = {t: i for i, t in enumerate(vocab)}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[int] = []
        for doc, c in enumerate(counts):
            for term, n in c.items():
                rows.append(row_of[term])
                cols.append(doc)
                tfs.append(n)
        doc_len = np.array([sum(c.values()) for c in counts], dtype=np.int32)
        return cls._from_triples(name, ids, vocab, doc_len, np.array(rows, np.int64), np.array(cols, np.int64), np.array(tfs, np.int64))

    @classmethod
    def _from_triples(
        cls, name: str, ids: list[str], vocab: list[str], doc_len: np.ndarray, rows: np.ndarray, cols: np.ndarray, tfs: np.ndarray
    ) -> Segment:
        order = np.lexsort((cols, rows))
        rows, cols, tfs = rows[order], cols[order], tfs[order]
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.add.at(indptr, rows + 1, 1)
        indptr = np.cumsum(indptr)
        return cls(name, ids, vocab, doc_len, indptr, cols.astype(np.int32), np.minimum(tfs, 65535).astype(np.uint16))

    @classmethod
    def merge(cls, name: str, segments: list[Segment]) -> Segment:
        """One segment holding the live documents of ``segments`` (postings remapped, no re-tokenising)."""
        vocab = sorted(set().union(*(s.vocab for s in segments)))
        row_of = {t: i for i, t in enumerate(vocab)}
        ids: list[str] = []
        lengths: list[np.ndarray] = []
        all_rows: list[np.ndarray] = []
        all_cols: list[np.ndarray] = []
        all_tf: list[np.ndarray] = []
        for s in segments:
            live = s.live
            new_pos = np.cumsum(live) - 1 + len(ids)
            ids.extend(i for i, keep in zip(s.ids, live) if keep)
            lengths.append(np.asarray(s.doc_len)[live])
            term_map = np.fromiter((row_of[t] for t in s.vocab), dtype=np.int64, count=len(s.vocab))
            rows = np.repeat(term_map, np.diff(np.asarray(s.indptr)))
            docs = np.asarray(s.docs)
            keep = live[docs]
            all_rows.append(rows[keep])
            all_cols.append(new_pos[docs[keep]])
            all_tf.append(np.asarray(s.tf)[keep].astype(np.int64))
        doc_len = np.concatenate(lengths).astype(np.int32) if lengths else np.zeros(0, np.int32)
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
        return cls._from_triples(name, ids, vocab, doc_len, cat(all_rows).astype(np.int64), cat(all_cols).astype(np.int64), cat(all_tf))

    # files ------------------------------------------------------------------------
    def write(self, directory: Path) -> None:
        tmp = directory / (self.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "ids.txt").write_text("\n".join(self.ids), encoding="utf-8")
        (tmp / "vocab.txt").write_text("\n".join(self.vocab), encoding="utf-8")
        for array in ("doc_len", "indptr", "docs", "tf"):
            np.save(tmp / f"{array}.npy", getattr(self, array))
        tmp.rename(directory / self.name)  # never over an existing segment: readers may have it open
        self.saved = True

    @classmethod
    def read(cls, directory: Path, name: str, deleted: list[int]) -> Segment:
        folder = directory / name
        split = lambda f: [line for line in (folder / f).read_text(encoding="utf-8").split("\n") if line]  # noqa: E731
        arrays = {a: np.load(folder / f"{a}.npy", mmap_mode="r") for a in ("doc_len", "indptr", "docs", "tf")}
        segment = cls(name, split("ids.txt"), split("vocab.txt"), deleted=set(deleted), saved=True, **arrays)
        segment.validate()
        return segment

    def validate(self) -> None:
        """Raise ValueError unless the arrays describe this segment's documents (a damaged file
        must make the segment unusable, never a wrong or failing search)."""
        indptr, docs, tf = self.indptr, self.docs, self.tf
        problems = [
            len(self.doc_len) != self.size,
            len(indptr) != len(self.vocab) + 1,
            len(indptr) > 0 and (int(indptr[0]) != 0 or int(indptr[-1]) != len(docs)),
            len(tf) != len(docs),
            len(indptr) > 1 and bool(np.any(np.diff(indptr) < 0)),
            len(docs) > 0 and (int(np.min(docs)) < 0 or int(np.max(docs)) >= self.size),
            any(p < 0 or p >= self.size for p in self.deleted),
            bool(np.any(np.asarray(self.doc_len) < 0)),
        ]
        if any(problems):
            raise ValueError(f"BM25 segment {self.name} is inconsistent")


_EMPTY_I = np.zeros(0, dtype=np.int32)
_EMPTY_F = np.zeros(0, dtype=np.float32)


class BM25Index:
    def __init__(self, segments: list[Segment], generation: int, next_segment: int = 1) -> None:
        self.segments = segments
        self.generation = generation
        self._next = next_segment
        self._where: dict[str, tuple[int, int]] | None = None  # chunk id -> (segment, position), built on demand

    @property
    def ids(self) -> list[str]:
        return [i for s in self.segments for i, keep in zip(s.ids, s.live) if keep]

    def copy(self) -> BM25Index:
        """An index that can be changed without changing this one (segment arrays are shared:
        they are never modified)."""
        segments = [replace(s, deleted=set(s.deleted), _live=None) for s in self.segments]
        return BM25Index(segments, self.generation, self._next)

    def __len__(self) -> int:
        return sum(s.live_length()[0] for s in self.segments)

    def tokenize(self, text: str) -> list[str]:
        return analysis.terms(text)

    @classmethod
    def build(cls, records: Iterable[tuple[str, str]], generation: int) -> BM25Index:
        index = cls([], generation)
        index.add(records)
        return index

    # changes (kept in memory until save) ---------------------------------------------------
    def add(self, records: Iterable[tuple[str, str]]) -> None:
        ids: list[str] = []
        counts: list[Counter[str]] = []
        for chunk_id, text in records:
            ids.append(chunk_id)
            counts.append(Counter(analysis.terms(text)))
        if not ids:
            return
        self.remove(ids)  # re-adding an id replaces it
        self.segments.append(Segment.from_term_counts(self._new_name(), ids, counts))
        self._where = None

    def remove(self, chunk_ids: Iterable[str]) -> int:
        where = self._locations()
        by_segment: dict[int, list[int]] = {}
        for chunk_id in chunk_ids:
            found = where.pop(chunk_id, None)
            if found is not None:
                by_segment.setdefault(found[0], []).append(found[1])
        for seg, positions in by_segment.items():
            self.segments[seg].mark_deleted(positions)
        return sum(len(p) for p in by_segment.values())

    def _locations(self) -> dict[str, tuple[int, int]]:
        if self._where is None:
            self._where = {}
            for s_no, s in enumerate(self.segments):
                live = s.live
                for pos, chunk_id in enumerate(s.ids):
                    if live[pos]:
                        self._where[chunk_id] = (s_no, pos)
        return self._where

    def _new_name(self) -> str:
        name = f"seg-{self._next:06d}"
        self._next += 1
        return name

    # queries ----------------------------------------------------------------------------
    def idf(self, word: str) -> float | None:
        """BM25's inverse document frequency of a word over the live chunks: how much finding it
        says about a passage. None for a stop word or an empty index."""
        terms = analysis.terms(word)
        total_docs = sum(s.live_length()[0] for s in self.segments)
        if not terms or total_docs == 0:
            return None
        df = sum(len(s.postings(terms[0])[0]) for s in self.segments)
        return float(_idf(np.float64(df), total_docs))

    def coverage(self, query: str) -> float:
        """Share of the query's terms that some live passage holds: what keyword search can do for
        this query over this corpus (low for a question in a language the documents are not in)."""
        terms = set(analysis.terms(query))
        if not terms:
            return 0.0
        return sum(any(len(s.postings(t)[0]) for s in self.segments) for t in terms) / len(terms)

    def search(self, query: str, n: int, only: Collection[str] | None = None) -> list[tuple[str, float]]:
        """The ``n`` best chunk ids for ``query`` with their BM25 scores (among ``only``, when given:
        the chosen documents fill all ``n`` places; term statistics stay the whole index's)."""
        terms = sorted(set(analysis.terms(query)))
        if not terms or not self.segments:
            return []
        stats = [s.live_length() for s in self.segments]
        total_docs = sum(d for d, _ in stats)
        if total_docs == 0:
            return []
        avgdl = max(sum(t for _, t in stats) / total_docs, 1e-9)
        postings = [[s.postings(t) for t in terms] for s in self.segments]
        df = np.array([sum(len(p[i][0]) for p in postings) for i in range(len(terms))], dtype=np.float64)
        idf = _idf(df, total_docs)
        found: list[tuple[float, str]] = []
        for s, seg_postings in zip(self.segments, postings):
            if not any(len(d) for d, _ in seg_postings):
                continue
            scores = np.zeros(s.size, dtype=np.float32)
            norm = K1 * (1 - B + B * np.asarray(s.doc_len, dtype=np.float32) / avgdl)
            for weight, (docs, tf) in zip(idf, seg_postings):
                if len(docs):
                    scores[docs] += weight * tf * (K1 + 1) / (tf + norm[docs])
            hit = np.flatnonzero(scores > 0)
            if only is not None:  # only the passages that scored are looked up, not every id of the segment
                hit = hit[np.fromiter((s.ids[i] in only for i in hit), dtype=bool, count=len(hit))]
            if len(hit) > n:  # keep the n best, and everything tied with the n-th (ties break by id below)
                kth = np.partition(scores[hit], len(hit) - n)[len(hit) - n]
                hit = hit[scores[hit] >= kth]
            found.extend((float(scores[i]), s.ids[i]) for i in hit)
        found.sort(key=lambda x: (-x[0], x[1]))
        return [(chunk_id, score) for score, chunk_id in found[:n]]

    # persistence --------------------------------------------------------------------------
    def save(self, directory: Path, generation: int) -> None:
        """Write new segments, then ``meta.json`` (the commit); merge first when fragmented."""
        self.generation = generation
        before = len(self.segments)
        self.segments = [s for s in self.segments if s.live_length()[0] > 0]
        if len(self.segments) != before:
            self._where = None
        total = sum(s.size for s in self.segments)
        dead = sum(len(s.deleted) for s in self.segments)
        if len(self.segments) > MAX_SEGMENTS or (total and dead / total > MAX_DELETED_SHARE):
            self.segments = [Segment.merge(self._new_name(), self.segments)]
            self._where = None
        directory.mkdir(parents=True, exist_ok=True)
        for s in self.segments:
            if not s.saved:
                while (directory / s.name).exists():  # left by a writer that died: never reuse the name
                    s.name = self._new_name()
                s.write(directory)
        meta = {
            "format": FORMAT,
            "generation": generation,
            "next_segment": self._next,
            "segments": [{"name": s.name, "deleted": sorted(s.deleted)} for s in self.segments],
        }
        atomic_write(directory / "meta.json", json.dumps(meta).encode())
        keep = {s.name for s in self.segments} | {"meta.json"}
        for entry in directory.iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: Path, generation: int) -> BM25Index | None:
        """The saved index if it matches ``generation``; ``None`` means the caller must bring one
        up to date (a writer between commits, a crash, a damaged file)."""
        found = cls.load_latest(directory)
        return found if found is not None and found.generation == generation else None

    @staticmethod
    def saved_generation(directory: Path) -> int | None:
        try:
            return int(json.loads((directory / "meta.json").read_text(encoding="utf-8"))["generation"])
        except Exception:  # missing or damaged: nothing usable is saved
            return None

    @classmethod
    def load_latest(cls, directory: Path) -> BM25Index | None:
        """The saved index, whatever its generation; ``None`` if there is none or it is damaged."""
        try:
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                return None
            segments = [Segment.read(directory, str(s["name"]), [int(d) for d in s["deleted"]]) for s in meta["segments"]]
            return cls(segments, int(meta["generation"]), int(meta["next_segment"]))
        except Exception:  # any damage means the index is rebuilt, never a failing search
            return None
