"""An OpenAI-compatible API over the assistant: ``/v1/models`` and ``/v1/chat/completions``.

Any tool that speaks the OpenAI chat API (the ``openai`` client, Open WebUI, editors, agents) can
ask the indexed documents. The last user message is the question; the user messages before it are
the conversation, resolved as the chat page resolves follow-ups. System messages and the client's
own assistant turns are not used: the grounding prompt is rag's, so that every answer stays cited and
checked. Each choice carries the answer's ``citations`` (the JSON contract of ``rag ask --json``),
and a refusal's reason in ``message.refusal``.

Served under the chat page's safety rules: loopback by default, and a bearer token required on any
other address. Questions take turns on one model thread (``WaitingRoom``); when too many wait, the
reply is a 429 the client can retry. One client cannot tie the server up: a body is at most
``MAX_BODY_BYTES``, only the last ``MAX_EARLIER`` user messages before the question are considered
and each message only up to ``MAX_MESSAGE_CHARS``, a question that is not answered within the
request's deadline fails with a 504, and a client that goes away stops its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rag.apps.room import WaitingRoom
from rag.apps.serve import bearer_matches
from rag.errors import DeadlineError, InputError, ModelError, NotIndexedError, RagError, ServerUnavailableError
from rag.index.where import Where
from rag.schema import Answer
from rag.service import Rag

MODEL_ID = "rag"  # the one model this API serves: the assistant over the index
STATUS_OF = {InputError: 400, NotIndexedError: 409, ModelError: 503, ServerUnavailableError: 503, DeadlineError: 504}
MAX_BODY_BYTES = 1_000_000  # a conversation's text is far smaller; a bigger body is refused unread
MAX_EARLIER = 8  # user messages before the question that follow-up resolution considers
MAX_MESSAGE_CHARS = 8_000  # a longer question is refused; a longer earlier message is cut


class ApiError(Exception):
    """An error the client sees as an OpenAI error object with this HTTP status."""

    def __init__(
        self, status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    @classmethod
    def of(cls, err: RagError) -> ApiError:
        status = next((s for kind, s in STATUS_OF.items() if isinstance(err, kind)), 500)
        kind = "invalid_request_error" if status < 500 else "server_error"
        message = f"{err.problem} (fix: {err.hint})" if err.hint else err.problem
        return cls(status, message, kind=kind, code=type(err).__name__)


@dataclass(frozen=True)
class ChatRequest:
    """What rag takes from a chat-completions body."""

    question: str
    earlier: list[str]  # the conversation's earlier user questions, oldest first
    stream: bool
    overrides: dict[str, Any]
    where: Where | None


def parse_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise ApiError(400, f"'model' is required: this server serves {MODEL_ID!r}", param="model")
    if model != MODEL_ID:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {MODEL_ID!r}", code="model_not_found", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        raise ApiError(400, "the last message must be the user's question", param="messages")
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"][-1 - MAX_EARLIER :]
    question = _text(messages[-1], len(messages) - 1)
    if not question.strip():
        raise ApiError(400, "the last message must be the user's question, and not empty", param="messages")
    if len(question) > MAX_MESSAGE_CHARS:
        raise ApiError(400, f"the question is {len(question):,} characters; at most {MAX_MESSAGE_CHARS:,} are taken", param="messages")
    earlier = [_text(messages[i], i)[:MAX_MESSAGE_CHARS] for i in users[:-1]]
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", param="stream")
    return ChatRequest(question, [e for e in earlier if e.strip()], stream, _overrides(body), _where(body.get("where")))


def _text(message: dict[str, Any], i: int) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        strings = [t for t in texts if isinstance(t, str)]
        if len(strings) < len(texts):
            raise ApiError(400, f"messages[{i}].content: a text part's 'text' must be a string", param=f"messages[{i}].content")
        return " ".join(strings)
    raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts", param=f"messages[{i}].content")


def _overrides(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling knobs a client may set, checked against the settings' own bounds."""
    out: dict[str, Any] = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    for name, value, low, high in (("max_tokens", limit, 16, 32768), ("temperature", body.get("temperature"), 0.0, 2.0)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ApiError(400, f"'{name}' must be a number from {low} to {high}", param=name)
        out[name] = int(value) if name == "max_tokens" else float(value)
    return out


def _where(value: Any) -> Where | None:
    """rag's own extension: ``"where": ["type:pdf", "source:contracts/*"]`` limits the documents."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "'where' must be a list of KEY:VALUE strings, e.g. [\"type:pdf\"]", param="where")
    try:
        return Where.parse(value) or None
    except InputError as err:
        raise ApiError.of(err) from None


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def choice_extras(answer: Answer) -> dict[str, Any]:
    return {"citations": [c.to_json() for c in answer.citations]}


def sources_text(answer: Answer) -> str:
    """The citations as text after the answer, for clients that show only the message's content."""
    lines = []
    for c in answer.citations:
        page = f", page {c.page}" if c.page is not None else ""
        lines.append(f"[{c.n}] {c.display_name or c.source}{page}: \u201c{' '.join(c.quote.split())}\u201d")
    return "\n\nSources:\n" + "\n".join(lines) if lines else ""


def completion(answer: Answer, cid: str, created: int, *, sources: bool = False) -> dict[str, Any]:
    content = answer.text + (sources_text(answer) if sources else "")
    message = {"role": "assistant", "content": content, "refusal": answer.refusal_reason if answer.refused else None}
    finish = "length" if answer.truncated else "stop"
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice_extras(answer)}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},  # not counted
    }


def chunk(cid: str, created: int, delta: dict[str, Any], finish: str | None = None, **extras: Any) -> str:
    body = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extras}],
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


class ChatApi:
    """The routes, over one ``Rag`` and its waiting room."""

    def __init__(
        self,
        rag: Rag,
        *,
        api_key: str | None = None,
        max_waiting: int = 8,
        sources_in_text: bool = False,
        request_seconds: float | None = 300,
    ) -> None:
        self.rag = rag
        self.api_key = api_key
        self.sources_in_text = sources_in_text
        self.request_seconds = request_seconds
        self.room = WaitingRoom(max_waiting)

    def app(self) -> Starlette:
        routes = [
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model}", self.model, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
        ]
        return Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed}, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        yield
        self.room.close()  # shutting down: answers in progress stop at their next step

    def _authorize(self, request: Request) -> None:
        if self.api_key is None:
            return
        if not bearer_matches(request.headers.get("authorization", ""), self.api_key):
            raise ApiError(401, "a valid API key is required: send 'Authorization: Bearer KEY'", code="invalid_api_key")

    def _model_card(self) -> dict[str, Any]:
        return {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag", "answers_with": self.rag.settings.model}

    async def models(self, request: Request) -> Response:
        return await _guarded(self, request, lambda: JSONResponse({"object": "list", "data": [self._model_card()]}))

    async def model(self, request: Request) -> Response:
        def card() -> Response:
            if request.path_params["model"] != MODEL_ID:
                raise ApiError(404, f"the model {request.path_params['model']!r} does not exist", code="model_not_found")
            return JSONResponse(self._model_card())

        return await _guarded(self, request, card)

    async def chat(self, request: Request) -> Response:
        try:
            self._authorize(request)
            asked = parse_request(await _json_body(request))
            if self.room.enter() is None:
                raise ApiError(
                    429, "the assistant is busy answering other questions; retry in a moment", kind="rate_limit_error", code="busy"
                )
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.status)
        gone = threading.Event()  # set when the client goes away: its answer stops at the next step
        if asked.stream:
            return StreamingResponse(self._sse(asked, gone), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            answer = await _unless_gone(request, gone, run_in_threadpool(self._answer, asked, gone))
        except Exception as err:  # a rag error with its fix, or a bug: an error object either way
            error = _api_error(err)
            return JSONResponse(error.body(), status_code=error.status)
        finally:
            self.room.leave()
        return JSONResponse(completion(answer, completion_id(), int(time.time()), sources=self.sources_in_text))

    def _events(self, asked: ChatRequest, gone: threading.Event) -> Iterator[Any]:
        """The answer's events, computed on the model thread."""

        def work() -> Iterator[Any]:
            earlier = [f.query for f in self.rag.resolve_all(asked.earlier)]
            follow = self.rag.resolve(asked.question, earlier)
            return self.rag.ask_stream(follow, where=asked.where, **asked.overrides)

        return self.room.stream(work, stop=gone, seconds=self.request_seconds)

    def _answer(self, asked: ChatRequest, gone: threading.Event) -> Answer:
        answers = [e for e in self._events(asked, gone) if isinstance(e, Answer)]
        if not answers:
            raise ServerUnavailableError("the answer was stopped before it was complete", "ask again")
        return answers[-1]

    async def _sse(self, asked: ChatRequest, gone: threading.Event) -> AsyncIterator[str]:
        cid, created = completion_id(), int(time.time())
        streamed = False
        try:
            yield chunk(cid, created, {"role": "assistant", "content": ""})
            async for event in iterate_in_threadpool(self._events(asked, gone)):
                if isinstance(event, Answer):
                    tail = ("" if streamed else event.text) + (sources_text(event) if self.sources_in_text else "")
                    finish = "length" if event.truncated else "stop"
                    refusal = event.refusal_reason if event.refused else None
                    yield chunk(cid, created, {"content": tail, "refusal": refusal}, finish, **choice_extras(event))
                elif isinstance(event, str):  # a checked sentence of the answer
                    streamed = True
                    yield chunk(cid, created, {"content": event})
            yield "data: [DONE]\n\n"
        except Exception as err:  # the stream has begun: the error is its last event
            yield f"data: {json.dumps(_api_error(err).body(), ensure_ascii=False)}\n\n"
        finally:  # also when the client went away and the server cancelled the stream
            gone.set()
            self.room.leave()


async def _json_body(request: Request) -> Any:
    """The request's JSON, read only up to ``MAX_BODY_BYTES`` (413 beyond)."""
    too_big = ApiError(413, f"the request body is over {MAX_BODY_BYTES:,} bytes", code="body_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_big
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > MAX_BODY_BYTES:
            raise too_big
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        raise ApiError(400, "the request body is not valid JSON (or is nested too deeply)") from None


async def _unless_gone(request: Request, gone: threading.Event, answering: Any) -> Any:
    """Await ``answering``, setting ``gone`` if the client disconnects meanwhile."""
    task = asyncio.ensure_future(answering)
    while not task.done():
        await asyncio.wait({task}, timeout=0.5)
        if not task.done() and await request.is_disconnected():
            gone.set()
    return task.result()


def _api_error(err: Exception) -> ApiError:
    if isinstance(err, RagError):
        return ApiError.of(err)
    return ApiError(500, f"internal error ({type(err).__name__}); the server goes on, retry or report it", kind="server_error")


async def _guarded(api: ChatApi, request: Request, respond: Any) -> Response:
    try:
        api._authorize(request)
        return respond()
    except ApiError as err:
        return JSONResponse(err.body(), status_code=err.status)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(ApiError(404, f"no route {request.url.path}; this server has /v1/models and /v1/chat/completions").body(), 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(ApiError(405, f"{request.method} is not allowed on {request.url.path}").body(), 405)
