"""Which Prefactor span type a LlamaIndex dispatcher span becomes, or whether it is folded away.

LlamaIndex opens a dispatcher span for every instrumented method, including plumbing such as
``RetrieverQueryEngine._query``, ``TokenTextSplitter.split_text`` or the refine program that
wraps one LLM call. Kept as spans they triple the size of a simple RAG trace without telling the
reader anything, so the rules are:

* public entry points of the component families become typed spans (query, retrieve, embedding,
  llm, synthesize, rerank, tool, agent, workflow);
* private methods (``_query``, ``_retrieve``, ...; node postprocessors excepted, whose only
  instrumented method is ``_postprocess_nodes``), text splitters and node parsers, programs,
  output parsers, ``get_response`` inside a synthesizer and the chat-stream writer are *folded*:
  they get no span, and whatever they start nests under their nearest traced ancestor;
* an LLM call inside an LLM span (``predict`` -> ``complete``, ``structured_predict`` ->
  ``chat``) and an embedding inside an embedding span are folded into the outer span, and so is
  any call of the same component family on the same object (``aquery`` delegating to ``query``);
* other LlamaIndex internals are folded; methods from the user's own code decorated with
  ``@dispatcher.span`` are kept as the generic ``llama_index:span`` so they stay visible.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = [
    "AGENT",
    "ALL_TYPES",
    "EMBEDDING",
    "FOLD",
    "INGEST",
    "INGEST_RUN",
    "LLM",
    "QUERY",
    "RERANK",
    "RETRIEVE",
    "SPAN",
    "STREAM_LEAF_METHODS",
    "SYNTHESIZE",
    "TOOL",
    "WORKFLOW",
    "WRITER_METHODS",
    "Classifier",
    "split_span_id",
]

QUERY = "llama_index:query"
RETRIEVE = "llama_index:retrieve"
EMBEDDING = "llama_index:embedding"
LLM = "llama_index:llm"
SYNTHESIZE = "llama_index:synthesize"
RERANK = "llama_index:rerank"
TOOL = "llama_index:tool"
AGENT = "llama_index:agent"
WORKFLOW = "llama_index:workflow"
SPAN = "llama_index:span"

ALL_TYPES = (QUERY, RETRIEVE, EMBEDDING, LLM, SYNTHESIZE, RERANK, TOOL, AGENT, WORKFLOW, SPAN)

# Internal markers (never sent): no span of its own / an ingestion step / an ingestion pipeline run.
FOLD = "fold"
INGEST = "ingest"
INGEST_RUN = "ingest_run"
STEP = "step"

_LLM_METHODS = frozenset(
    {
        "chat",
        "achat",
        "stream_chat",
        "astream_chat",
        "complete",
        "acomplete",
        "stream_complete",
        "astream_complete",
        "predict",
        "apredict",
        "stream",
        "astream",
        "structured_predict",
        "astructured_predict",
        "stream_structured_predict",
        "astream_structured_predict",
        "predict_and_call",
        "apredict_and_call",
    }
)
# LLM methods whose streamed result is followed by end/exception events carrying their span id.
STREAM_LEAF_METHODS = frozenset(
    {"stream_chat", "astream_chat", "stream_complete", "astream_complete"}
)
_EMBEDDING_METHODS = frozenset(
    {
        "get_query_embedding",
        "aget_query_embedding",
        "get_text_embedding",
        "aget_text_embedding",
        "get_text_embedding_batch",
        "aget_text_embedding_batch",
        "get_agg_embedding_from_queries",
        "aget_agg_embedding_from_queries",
    }
)
_QUERY_METHODS = frozenset({"query", "aquery"})
_RETRIEVE_METHODS = frozenset({"retrieve", "aretrieve"})
_SYNTH_METHODS = frozenset({"synthesize", "asynthesize"})
# Only the private hooks are instrumented on postprocessors (the public method is not).
_RERANK_METHODS = frozenset(
    {"postprocess_nodes", "apostprocess_nodes", "_postprocess_nodes", "_apostprocess_nodes"}
)
_TOOL_METHODS = frozenset({"call", "acall", "__call__"})
_CHAT_METHODS = frozenset({"chat", "achat", "stream_chat", "astream_chat"})
WRITER_METHODS = frozenset({"write_response_to_history", "awrite_response_to_history"})
_STEP_TAG = "llamaindex.step.input_event"
_LIBRARY_MODULE_PREFIXES = ("llama_index.", "llama_index_", "workflows.", "llama_agents.")


def split_span_id(id_: str) -> tuple[str, str]:
    """``("Class.method", "method")`` from a dispatcher span id ``"Class.method-<uuid4>"``."""
    name = id_[:-37] if len(id_) > 37 and id_[-37] == "-" else id_
    return name, name.rsplit(".", 1)[-1]


def _load(path: str, attr: str) -> type | None:
    try:
        module = __import__(path, fromlist=[attr])
        cls = getattr(module, attr)
    except Exception:
        return None
    return cls if isinstance(cls, type) else None


class _Families:
    """The LlamaIndex base classes, imported once and tolerant of missing modules."""

    def __init__(self) -> None:
        def load(*pairs: tuple[str, str]) -> tuple[type, ...]:
            return tuple(c for c in (_load(p, a) for p, a in pairs) if c is not None)

        self.llm = load(("llama_index.core.base.llms.base", "BaseLLM"))
        self.embedding = load(("llama_index.core.base.embeddings.base", "BaseEmbedding"))
        self.query = load(("llama_index.core.base.base_query_engine", "BaseQueryEngine"))
        self.retriever = load(("llama_index.core.base.base_retriever", "BaseRetriever"))
        self.synth = load(("llama_index.core.response_synthesizers.base", "BaseSynthesizer"))
        self.rerank = load(("llama_index.core.postprocessor.types", "BaseNodePostprocessor"))
        self.tool = load(("llama_index.core.tools.types", "BaseTool"))
        self.chat = load(("llama_index.core.chat_engine.types", "BaseChatEngine"))
        self.writer = load(("llama_index.core.chat_engine.types", "StreamingAgentChatResponse"))
        self.workflow = load(("workflows.workflow", "Workflow"))
        self.agent_workflow = load(
            ("llama_index.core.agent.workflow.base_agent", "BaseWorkflowAgent"),
            ("llama_index.core.agent.workflow.multi_agent_workflow", "AgentWorkflow"),
        )
        self.ingest = load(
            ("llama_index.core.schema", "TransformComponent"),
            ("llama_index.core.node_parser.interface", "NodeParser"),
            ("llama_index.core.node_parser.interface", "TextSplitter"),
        )
        self.pipeline = load(("llama_index.core.ingestion.pipeline", "IngestionPipeline"))
        self.plumbing = load(
            ("llama_index.core.types", "BasePydanticProgram"),
            ("llama_index.core.types", "BaseOutputParser"),
            ("llama_index.core.prompts.base", "BasePromptTemplate"),
        )


class Classifier:
    """Maps a dispatcher span to a span type (or :data:`FOLD` / :data:`INGEST`).

    The per-class part of the decision is cached by ``(type, method)``; only the nesting rule
    depends on the parent.
    """

    def __init__(self) -> None:
        self._families: _Families | None = None
        self._cache: dict[tuple[type, str], str] = {}
        self._lock = threading.Lock()

    def _fam(self) -> _Families:
        if self._families is None:
            self._families = _Families()
        return self._families

    def base_kind(self, instance: Any, method: str, tags: Any) -> str:
        """The span type for ``method`` called on ``instance``, ignoring the parent."""
        if instance is None:
            if tags and _STEP_TAG in tags:
                return STEP
            return SPAN
        key = (type(instance), method)
        kind = self._cache.get(key)
        if kind is None:
            kind = self._classify(instance, method)
            with self._lock:
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[key] = kind
        return kind

    def _classify(self, instance: Any, method: str) -> str:
        f = self._fam()
        if f.rerank and isinstance(instance, f.rerank):
            return RERANK if method in _RERANK_METHODS else FOLD
        if method.startswith("_") and method != "__call__":
            return FOLD
        if f.llm and isinstance(instance, f.llm):
            return LLM if method in _LLM_METHODS else FOLD
        if f.embedding and isinstance(instance, f.embedding):
            return EMBEDDING if method in _EMBEDDING_METHODS else FOLD
        if f.workflow and isinstance(instance, f.workflow):
            if method != "run":
                return FOLD
            return (
                AGENT if f.agent_workflow and isinstance(instance, f.agent_workflow) else WORKFLOW
            )
        if f.query and isinstance(instance, f.query):
            return QUERY if method in _QUERY_METHODS else FOLD
        if f.retriever and isinstance(instance, f.retriever):
            return RETRIEVE if method in _RETRIEVE_METHODS else FOLD
        if f.synth and isinstance(instance, f.synth):
            return SYNTHESIZE if method in _SYNTH_METHODS else FOLD
        if f.tool and isinstance(instance, f.tool):
            return TOOL if method in _TOOL_METHODS else FOLD
        if f.chat and isinstance(instance, f.chat):
            return AGENT if method in _CHAT_METHODS else FOLD
        if f.writer and isinstance(instance, f.writer):
            return FOLD
        if f.ingest and isinstance(instance, f.ingest):
            return INGEST
        if f.pipeline and isinstance(instance, f.pipeline):
            return INGEST_RUN if method in ("run", "arun") else FOLD
        if f.plumbing and isinstance(instance, f.plumbing):
            return FOLD
        module = getattr(type(instance), "__module__", "") or ""
        if module.startswith(_LIBRARY_MODULE_PREFIXES):
            return FOLD
        return SPAN

    @staticmethod
    def nested_kind(
        kind: str, *, same_object: bool, parent_kind: str | None, parent_is_run: bool
    ) -> str:
        """Apply the nesting rules to ``kind`` for a span whose traced parent is given.

        A call of the same family on the same object folds into its parent (LLM and embedding
        calls fold into any enclosing LLM/embedding span); ingestion steps inside a run fold; a
        step-tagged function is a workflow step only directly under a workflow/agent run.
        """
        if kind == STEP:
            return WORKFLOW if parent_is_run else SPAN
        if parent_kind is None:
            return kind
        if kind in (INGEST, INGEST_RUN):
            return FOLD
        if kind == parent_kind and (same_object or kind in (LLM, EMBEDDING)):
            return FOLD
        return kind
