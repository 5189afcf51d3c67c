"""The Chroma ``VectorStore``: the only module that imports chromadb.

Chroma's columnar results become ``Chunk`` objects here; nothing above sees them.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from rag.errors import IndexMismatchError, RagError, ServerUnavailableError
from rag.index.manifest import rebuild_hint
from rag.index.store import COLLECTION
from rag.schema import Chunk

LAYOUT_VERSION = 1

# chromadb keeps one system per path in a process-wide cache (SharedSystemClient) and builds it
# without a lock: two threads opening the same store at once get a half-built one
# ("'RustBindingsAPI' object has no attribute 'bindings'", "KeyError: '…/chroma'")
_CLIENTS_LOCK = threading.Lock()


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def library_version() -> str:
    import chromadb

    return str(chromadb.__version__)


def server_address(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of a Chroma server URL ``http(s)://host[:port]``: 8000 for http, 443 for https."""
    parsed = urlparse(url)
    https = parsed.scheme == "https"
    return parsed.hostname or "127.0.0.1", parsed.port or (443 if https else 8000), https


def chroma_client(url: str | None, index_dir: Path) -> Any:
    """The one way this project opens Chroma: the server at ``url``, or the store under ``index_dir``."""
    import chromadb
    from chromadb.utils.embedding_functions import register_embedding_function

    register_embedding_function(_NoEmbedding)  # so that reopening a collection finds it by name, silently
    if url:
        host, port, ssl = server_address(url)
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_chroma_settings())
    (index_dir / "chroma").mkdir(parents=True, exist_ok=True)
    with _CLIENTS_LOCK:
        return chromadb.PersistentClient(path=str(index_dir / "chroma"), settings=_chroma_settings())


def discard(index_dir: Path, url: str | None, collection: str) -> None:
    """Delete the collection on the server, or the embedded store's folder."""
    if url:
        client = chroma_client(url, index_dir)
        existing = {c.name for c in client.list_collections()}
        for name in (collection, ChromaFileTable.name_for(collection)):
            if name in existing:
                client.delete_collection(name)
        return
    shutil.rmtree(index_dir / "chroma", ignore_errors=True)
    from chromadb.api.client import SharedSystemClient

    with _CLIENTS_LOCK:
        SharedSystemClient.clear_system_cache()  # forget the client that failed on the old store


class _NoEmbedding:
    """Stands in for Chroma's embedding function so it never loads (or downloads) its default model.

    Vectors are always computed by our ``Embedder`` and passed in explicitly.
    """

    def __init__(self, embedder_name: str) -> None:
        self.embedder_name = embedder_name

    def __call__(self, input: Sequence[str]) -> list[np.ndarray]:
        raise RagError("internal: Chroma asked to embed text; vectors must be passed explicitly")

    @staticmethod
    def name() -> str:
        return "rag-external"

    def get_config(self) -> dict[str, Any]:
        return {"embedder": self.embedder_name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> _NoEmbedding:
        return _NoEmbedding(config.get("embedder", ""))

    def is_legacy(self) -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def embed_query(self, input: Sequence[str]) -> list[np.ndarray]:
        return self(input)

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        return None


class ChromaStore:
    """Chunks and their vectors in one Chroma collection that records the embedder that made them."""

    def __init__(self, index_dir: Path, embedder_name: str, dimension: int, url: str | None = None, collection: str = COLLECTION) -> None:
        self.embedder_name = embedder_name
        self.dimension = dimension
        self.collection_name = collection
        self.index_dir = index_dir
        self.url = url
        if url:
            try:
                self._client = chroma_client(url, index_dir)
                self._client.heartbeat()
            except Exception as err:
                raise ServerUnavailableError(
                    f"cannot reach the Chroma server at {url} ({type(err).__name__}: {err})",
                    "start it (chroma run --path DIR --host HOST --port PORT), "
                    "or unset RAG_CHROMA_URL / --chroma-url to use the embedded store",
                ) from None
            self.location = f"{url} (collection {collection})"
        else:
            self._client = chroma_client(None, index_dir)
            self.location = str(index_dir / "chroma")
        self._ef = _NoEmbedding(embedder_name)
        self._collection = self._open()
        self.max_batch = max(1, int(self._client.get_max_batch_size()))

    def _open(self) -> Any:
        existing = {c.name for c in self._client.list_collections()}
        if self.collection_name in existing:
            collection = self._client.get_collection(self.collection_name, embedding_function=self._ef)
            meta = collection.metadata or {}
            recorded = meta.get("embedder")
            if recorded != self.embedder_name or int(meta.get("dimension", self.dimension)) != self.dimension:
                raise IndexMismatchError(
                    f"the index at {self.location} was built with embedder '{recorded}' "
                    f"({meta.get('dimension')} dims); this run uses '{self.embedder_name}' ({self.dimension} dims)",
                    f"run with --embedder '{recorded}', or {rebuild_hint(self.index_dir)} (for the new embedder)",
                )
            return collection
        return self._client.create_collection(
            self.collection_name,
            embedding_function=self._ef,
            metadata={"embedder": self.embedder_name, "dimension": self.dimension, "layout": LAYOUT_VERSION},
            configuration={"hnsw": {"space": "cosine"}},
        )

    def file_table(self) -> ChromaFileTable | None:
        """The manifest's records beside the collection on a server (None for the embedded store)."""
        return ChromaFileTable(self._client, self.collection_name, self.embedder_name) if self.url else None

    # writes -----------------------------------------------------------------
    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        for start in range(0, len(chunks), self.max_batch):
            batch = chunks[start : start + self.max_batch]
            self._collection.upsert(
                ids=[c.id for c in batch],
                embeddings=vectors[start : start + self.max_batch],
                documents=[c.text for c in batch],
                metadatas=[_to_metadata(c) for c in batch],
            )

    def delete_source(self, source: str) -> list[str]:
        """Delete every chunk stored for ``source``; returns their ids."""
        ids = self.ids_of_sources([source])
        self.delete(ids)
        return ids

    def ids_of_sources(self, sources: Sequence[str]) -> list[str]:
        """The ids of the chunks stored for any of ``sources`` (one request per few hundred)."""
        ids: list[str] = []
        for start in range(0, len(sources), 500):
            where: dict[str, Any] = {"source": {"$in": list(sources[start : start + 500])}}
            ids.extend(self._collection.get(where=where, include=[])["ids"])
        return ids

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(ids))
        for start in range(0, len(ids), self.max_batch):
            self._collection.delete(ids=ids[start : start + self.max_batch])

    def drop_all(self) -> None:
        self._client.delete_collection(self.collection_name)
        self._collection = self._open()

    # reads ------------------------------------------------------------------
    def count(self) -> int:
        return int(self._collection.count())

    def query(self, vector: np.ndarray, n: int, sources: Collection[str] | None = None) -> list[tuple[Chunk, float]]:
        total = self.count()
        if total == 0 or (sources is not None and not sources):
            return []
        where = {"source": {"$in": sorted(sources)}} if sources is not None else None
        result = self._collection.query(
            query_embeddings=[vector], n_results=min(n, total), where=where, include=["documents", "metadatas", "distances"]
        )
        out = []
        for chunk_id, text, meta, distance in zip(result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0]):
            out.append((_from_record(chunk_id, text, meta), 1.0 - float(distance)))
        return out

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in order (missing ones left out; repeated ids are fine)."""
        unique = list(dict.fromkeys(ids))
        by_id: dict[str, Chunk] = {}
        for start in range(0, len(unique), self.max_batch):  # a new instance fetches every passage at once
            result = self._collection.get(ids=unique[start : start + self.max_batch], include=["documents", "metadatas"])
            by_id.update((i, _from_record(i, t, m)) for i, t, m in zip(result["ids"], result["documents"], result["metadatas"]))
        return [by_id[i] for i in ids if i in by_id]

    def iter_all(self) -> Iterator[Chunk]:
        offset = 0
        while True:
            page = self._collection.get(include=["documents", "metadatas"], limit=self.max_batch, offset=offset)
            if not page["ids"]:
                return
            for chunk_id, text, meta in zip(page["ids"], page["documents"], page["metadatas"]):
                yield _from_record(chunk_id, text, meta)
            offset += len(page["ids"])

    def ids_by_source(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        offset = 0
        while True:
            page = self._collection.get(include=["metadatas"], limit=self.max_batch, offset=offset)
            if not page["ids"]:
                return out
            for chunk_id, meta in zip(page["ids"], page["metadatas"]):
                out.setdefault(str(meta.get("source")), set()).add(chunk_id)
            offset += len(page["ids"])


class ChromaFileTable:
    """The manifest on the Chroma server, beside the passages (collection ``<name>_files``): one
    record per indexed file (its manifest entry as JSON, or a tombstone once it was removed) and a
    header with the manifest's own fields, each stamped with the generation that wrote it. Every
    instance of rag using the collection reads it, so all see the same documents; the keyword index
    each one keeps is derived from these records and the passages."""

    HEADER = "~manifest"  # never a source: sources are absolute paths or ids given by callers
    UNIT = (1.0,)  # Chroma stores a vector with every record; these records need none

    def __init__(self, client: Any, collection: str, embedder_name: str) -> None:
        self._collection = client.get_or_create_collection(
            self.name_for(collection), embedding_function=_NoEmbedding(embedder_name), metadata={"rag": "manifest records"}
        )
        self.max_batch = max(1, int(client.get_max_batch_size()))

    @staticmethod
    def name_for(collection: str) -> str:
        return f"{collection}_files"

    def header(self) -> tuple[int, str] | None:
        """(generation, header JSON) as last published, or None before anything was."""
        found = self._collection.get(ids=[self.HEADER], include=["documents", "metadatas"])
        if not found["ids"]:
            return None
        return int(found["metadatas"][0]["generation"]), str(found["documents"][0])

    def write(self, generation: int, header: str, records: dict[str, str | None]) -> None:
        """Publish changed records (None: the file was removed), then the header: a reader that sees
        the new generation finds every record it needs."""
        items = list(records.items())
        for start in range(0, len(items), self.max_batch):
            batch = items[start : start + self.max_batch]
            self._collection.upsert(
                ids=[source for source, _ in batch],
                embeddings=[list(self.UNIT)] * len(batch),
                documents=[doc or "" for _, doc in batch],
                metadatas=[{"generation": generation, "removed": doc is None} for _, doc in batch],
            )
        self._collection.upsert(ids=[self.HEADER], embeddings=[list(self.UNIT)], documents=[header], metadatas=[{"generation": generation}])

    def changed_since(self, generation: int | None) -> dict[str, str | None]:
        """Records written after ``generation`` (all live ones when None); None marks a removal."""
        where = {"generation": {"$gt": generation}} if generation is not None else {"removed": False}
        out: dict[str, str | None] = {}
        offset = 0
        while True:
            page = self._collection.get(where=where, include=["documents", "metadatas"], limit=self.max_batch, offset=offset)
            if not page["ids"]:
                return out
            for source, doc, meta in zip(page["ids"], page["documents"], page["metadatas"]):
                if source != self.HEADER:
                    out[source] = None if meta.get("removed") else str(doc)
            offset += len(page["ids"])


def _to_metadata(chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source": chunk.source,
        "display_name": chunk.display_name,
        "heading": chunk.heading,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "n_tokens": chunk.n_tokens,
    }
    if chunk.page is not None:
        meta["page"] = chunk.page
    return meta


def _from_record(chunk_id: str, text: str | None, meta: dict[str, Any] | None) -> Chunk:
    meta = meta or {}
    page = meta.get("page")
    return Chunk(
        id=chunk_id,
        text=text or "",
        source=str(meta.get("source", "")),
        display_name=str(meta.get("display_name", "")),
        page=int(page) if page is not None else None,
        heading=str(meta.get("heading", "")),
        char_start=int(meta.get("char_start", 0)),
        char_end=int(meta.get("char_end", 0)),
        n_tokens=int(meta.get("n_tokens", 0)),
    )
