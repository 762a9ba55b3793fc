"""Queries and chat engines over a real VectorStoreIndex: the span trees the server stores."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _li_support import (
    CITIES,
    check_tree,
    make_client,
    mock_llm,
    of_type,
    only_instance,
    outline,
    parent_of,
    shape,
    stored,
)
from llama_index.core import VectorStoreIndex
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.chat_engine.types import ChatMode
from llama_index.core.llms import (
    CompletionResponse,
    CompletionResponseGen,
    CustomLLM,
    LLMMetadata,
)
from llama_index.core.llms.callbacks import llm_completion_callback

from prefactor_integrations.llama_index import PrefactorSpanHandler, instrument
from prefactor_local.server import LocalServer

# A simple RAG query is: query -> retrieve -> embedding, and synthesize -> llm.
RAG_SPAN_BOUND = 6
AGENT = "llama_index:agent"
RAG_SHAPE = "\n".join(["query", "  retrieve", "    embedding", "  synthesize", "    llm"])


def test_query_is_one_instance_with_a_readable_tree(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=mock_llm(), similarity_top_k=2)
    response = engine.query("What is the capital of France?")
    assert str(response)

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "complete"
    root = check_tree(spans, root_type="llama_index:query")
    assert len(spans) <= RAG_SPAN_BOUND, outline(spans)
    assert shape(spans) == RAG_SHAPE, outline(spans)
    assert all(s["status"] == "complete" for s in spans)
    assert root["payload"]["query"] == "What is the capital of France?"
    assert root["result_payload"]["response"] == str(response)

    (retrieve,) = of_type(spans, "llama_index:retrieve")
    nodes = retrieve["result_payload"]["nodes"]
    assert retrieve["result_payload"]["node_count"] == 2
    texts = [n["text"] for n in nodes]
    assert any(f"capital of {c} is {city}" in t for c, city in CITIES.items() for t in texts)
    assert all(isinstance(n["score"], float) and n["metadata"]["country"] in CITIES for n in nodes)

    (embedding,) = of_type(spans, "llama_index:embedding")
    assert embedding["result_payload"] == {"count": 1, "dimension": 8}
    assert embedding["payload"]["model"] == "MockEmbedding"  # not LlamaIndex's "unknown"
    assert parent_of(spans, embedding)["schema_name"] == "llama_index:retrieve"

    (llm,) = of_type(spans, "llama_index:llm")
    assert parent_of(spans, llm)["schema_name"] == "llama_index:synthesize"
    assert llm["payload"]["operation"] == "predict"
    assert "capital of" in llm["payload"]["template_args"]["context_str"]
    assert llm["payload"]["template_args"]["query_str"] == "What is the capital of France?"
    assert "{query_str}" in llm["payload"]["prompt"]
    assert llm["result_payload"]["response"] == str(response)


def test_chat_engine_turns_are_separate_instances(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    chat = index.as_chat_engine(chat_mode=ChatMode.CONDENSE_PLUS_CONTEXT, llm=mock_llm())
    first = chat.chat("Tell me about Kenya")
    chat.chat("And Peru?")

    runs = stored(local_server, traced)
    assert len(runs) == 2
    for instance, spans in runs:
        assert instance["status"] == "complete"
        root = check_tree(spans, root_type="llama_index:agent")
        assert root["payload"]["operation"] == "chat"
        assert of_type(spans, "llama_index:retrieve")
        assert of_type(spans, "llama_index:llm")
    roots = {r["payload"]["message"]: r for r in (check_tree(s, root_type=AGENT) for _, s in runs)}
    assert set(roots) == {"Tell me about Kenya", "And Peru?"}
    assert roots["Tell me about Kenya"]["result_payload"]["response"] == str(first)


def test_streaming_query_stays_open_until_consumed(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=mock_llm(), streaming=True)
    streaming = engine.query("Where is Tokyo?")
    assert isinstance(streaming, StreamingResponse)

    # The query call has returned, but the answer has not been generated yet.
    ((instance, spans),) = stored(local_server, traced)
    assert instance["finished_at"] is None
    assert not of_type(spans, "llama_index:llm")

    tokens = list(streaming.response_gen)
    assert tokens

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "complete"
    root = check_tree(spans, root_type="llama_index:query")
    assert root["result_payload"]["response"] == "".join(tokens)
    (llm,) = of_type(spans, "llama_index:llm")
    assert parent_of(spans, llm)["schema_name"] == "llama_index:synthesize"
    assert llm["payload"]["streaming"] is True
    result = llm["result_payload"]
    assert result["stream_chunks"] == len(tokens)
    assert result["time_to_first_token_ms"] >= 0
    assert result["response"].startswith("text")
    synthesize = parent_of(spans, llm)
    assert synthesize["result_payload"]["response"] == "".join(tokens)
    assert synthesize["finished_at"] >= llm["finished_at"]


def test_abandoned_stream_is_cancelled_not_left_open(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=mock_llm(), streaming=True)
    streaming = engine.query("Where is Lima?")
    assert isinstance(streaming, StreamingResponse)
    gen = streaming.response_gen
    assert isinstance(gen, Generator)
    next(gen)
    gen.close()

    instance, spans = only_instance(local_server, traced)
    assert instance["finished_at"] is not None
    check_tree(spans, root_type="llama_index:query")
    (llm,) = of_type(spans, "llama_index:llm")
    assert llm["status"] == "cancelled"
    assert llm["result_payload"]["stream_abandoned"] is True
    assert traced.stats()["open_runs"] == 0


def test_sync_streaming_chat_waits_for_the_writer_thread(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    chat = index.as_chat_engine(chat_mode=ChatMode.CONDENSE_PLUS_CONTEXT, llm=mock_llm())
    response = chat.stream_chat("Tell me about Peru")
    tokens = list(response.response_gen)
    assert tokens

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "complete"
    root = check_tree(spans, root_type=AGENT)
    assert root["payload"]["operation"] == "stream_chat"
    assert root["result_payload"]["response"] == str(response)
    assert all(s["finished_at"] <= root["finished_at"] for s in spans)
    assert traced.stats()["open_runs"] == 0


async def test_async_streaming_chat_nests_the_background_writer(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    chat = index.as_chat_engine(chat_mode=ChatMode.CONDENSE_PLUS_CONTEXT, llm=mock_llm())
    response = await chat.astream_chat("Tell me about Japan")
    tokens = [t async for t in response.async_response_gen()]
    assert tokens

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "complete"
    root = check_tree(spans, root_type="llama_index:agent")
    assert root["payload"]["operation"] == "astream_chat"
    assert root["result_payload"]["response"] == str(response)
    streamed = [s for s in of_type(spans, "llama_index:llm") if s["payload"]["streaming"]]
    assert streamed and all(s["result_payload"].get("stream_chunks") for s in streamed)


async def test_ten_concurrent_aqueries_do_not_cross_talk(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=mock_llm(), similarity_top_k=1)
    questions = [f"question number {i}" for i in range(10)]
    await asyncio.gather(*(engine.aquery(q) for q in questions))

    runs = stored(local_server, traced)
    assert len(runs) == 10
    seen = set()
    for instance, spans in runs:
        assert instance["status"] == "complete"
        root = check_tree(spans, root_type="llama_index:query")
        assert len(spans) <= RAG_SPAN_BOUND
        question = root["payload"]["query"]
        seen.add(question)
        # every query-carrying span of this instance talks about this instance's question only
        for span in spans:
            query = (span["payload"] or {}).get("query")
            assert query in (None, question), outline(spans)
        assert {s["agent_instance_id"] for s in spans} == {instance["id"]}
    assert seen == set(questions)


def test_queries_from_threads_are_separate_instances(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=mock_llm())
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: engine.query(f"thread question {i}"), range(6)))

    runs = stored(local_server, traced)
    assert len(runs) == 6
    queries = set()
    for instance, spans in runs:
        assert instance["status"] == "complete"
        root = check_tree(spans, root_type="llama_index:query")
        queries.add(root["payload"]["query"])
        assert shape(spans) == RAG_SHAPE
    assert queries == {f"thread question {i}" for i in range(6)}


def test_capture_content_false_keeps_structure_not_text(
    local_server: LocalServer, index: VectorStoreIndex
) -> None:
    handler = instrument(make_client(local_server), capture_content=False)
    engine = index.as_query_engine(llm=mock_llm())
    engine.query("What is the capital of Peru?")

    _, spans = only_instance(local_server, handler)
    check_tree(spans, root_type="llama_index:query")
    dumped = json.dumps([(s["payload"], s["result_payload"]) for s in spans])
    assert "Peru" not in dumped and "capital" not in dumped
    (query,) = of_type(spans, "llama_index:query")
    assert query["payload"]["query"] == "[28 chars]"  # "What is the capital of Peru?"
    (retrieve,) = of_type(spans, "llama_index:retrieve")
    assert retrieve["result_payload"]["node_count"] == 2
    nodes = retrieve["result_payload"]["nodes"]
    assert all(n["node_id"] and n["text"].endswith(" chars]") for n in nodes)
    assert all(set(n["metadata"]) == {"country"} for n in nodes)  # keys stay, values are sizes
    assert all(n["metadata"]["country"].endswith(" chars]") for n in nodes)
    (llm,) = of_type(spans, "llama_index:llm")
    assert (llm["payload"]["llm_class"], llm["payload"]["operation"]) == ("MockLLM", "predict")
    assert llm["payload"]["prompt"].endswith(" chars]")
    assert sorted(llm["payload"]["template_args"]) == ["context_str", "query_str"]
    assert llm["result_payload"]["response"].endswith(" chars]")


def test_index_building_outside_a_run_is_not_traced(
    local_server: LocalServer, traced: PrefactorSpanHandler
) -> None:
    from _li_support import build_index

    build_index()
    assert stored(local_server, traced) == []


def test_trace_ingestion_makes_index_building_visible(local_server: LocalServer) -> None:
    from _li_support import build_index

    handler = instrument(make_client(local_server), trace_ingestion=True)
    build_index()
    runs = stored(local_server, handler)
    # one instance for the node parser, one for the embedding batch; their internals folded
    assert sorted(s["schema_name"] for _, spans in runs for s in spans) == [
        "llama_index:embedding",
        "llama_index:span",
    ]
    assert all(i["status"] == "complete" for i, _ in runs)


def test_node_postprocessor_is_a_rerank_span(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    from llama_index.core.postprocessor import SimilarityPostprocessor

    engine = index.as_query_engine(
        llm=mock_llm(), node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=0.0)]
    )
    engine.query("Which city is in Kenya?")

    _, spans = only_instance(local_server, traced)
    check_tree(spans, root_type="llama_index:query")
    assert shape(spans) == "\n".join(
        ["query", "  retrieve", "    embedding", "  rerank", "  synthesize", "    llm"]
    ), outline(spans)
    (rerank,) = of_type(spans, "llama_index:rerank")
    assert rerank["payload"]["postprocessor"] == "SimilarityPostprocessor"
    assert rerank["payload"]["node_count"] == 2
    assert rerank["result_payload"]["node_count"] == 2


def test_runs_whose_end_never_comes_are_swept_as_cancelled(
    local_server: LocalServer, index: VectorStoreIndex
) -> None:
    handler = instrument(make_client(local_server), idle_timeout=0.0)
    engine = index.as_query_engine(llm=mock_llm(), streaming=True)
    never_read = engine.query("Is anyone listening?")

    assert handler.sweep() == 1
    instance, spans = only_instance(local_server, handler)
    assert instance["status"] == "cancelled"
    check_tree(spans, root_type="llama_index:query")
    assert {s["status"] for s in of_type(spans, "llama_index:synthesize")} == {"cancelled"}
    assert handler.stats()["open_runs"] == 0
    del never_read


class _UsageLLM(CustomLLM):
    """A scripted LLM whose raw responses carry OpenAI-style token usage."""

    model: str = "scripted-gpt"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        return CompletionResponse(text="It is Paris.", raw={"usage": usage})

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text="It is", delta="It is")
            yield CompletionResponse(
                text="It is Paris.",
                delta=" Paris.",
                raw={"usage": {"input_tokens": 9, "output_tokens": 2}},
            )

        return gen()


def test_model_name_and_token_usage_come_from_the_response(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    index.as_query_engine(llm=_UsageLLM()).query("Capital of France?")
    streaming = index.as_query_engine(llm=_UsageLLM(), streaming=True).query("Again?")
    assert isinstance(streaming, StreamingResponse)
    assert "".join(streaming.response_gen) == "It is Paris."

    by_query = {
        check_tree(spans, root_type="llama_index:query")["payload"]["query"]: spans
        for _, spans in stored(local_server, traced)
    }
    plain, streamed = by_query["Capital of France?"], by_query["Again?"]
    (llm,) = of_type(plain, "llama_index:llm")
    assert llm["payload"]["model"] == "scripted-gpt"
    assert llm["result_payload"]["token_usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
    }
    assert llm["result_payload"]["response"] == "It is Paris."
    (llm,) = of_type(streamed, "llama_index:llm")
    assert llm["result_payload"]["token_usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "total_tokens": 11,
    }
    assert llm["result_payload"]["stream_chunks"] == 2


def test_embedding_vectors_only_when_asked(
    local_server: LocalServer, index: VectorStoreIndex
) -> None:
    handler = instrument(make_client(local_server), capture_embeddings=True)
    index.as_query_engine(llm=mock_llm()).query("vectors please")
    _, spans = only_instance(local_server, handler)
    (embedding,) = of_type(spans, "llama_index:embedding")
    (vector,) = embedding["result_payload"]["embeddings"]
    assert len(vector) == embedding["result_payload"]["dimension"] == 8


def test_mask_is_applied_to_every_payload(
    local_server: LocalServer, index: VectorStoreIndex
) -> None:
    def hide_queries(payload: Any) -> Any:
        if not isinstance(payload, dict):
            return payload
        hidden = {key: "***" for key in ("query", "inputs", "template_args") if key in payload}
        return {**payload, **hidden}

    handler = instrument(make_client(local_server), mask=hide_queries)
    index.as_query_engine(llm=mock_llm()).query("secret question")
    _, spans = only_instance(local_server, handler)
    check_tree(spans, root_type="llama_index:query")
    assert "secret question" not in repr([s["payload"] for s in spans])
    assert {s["payload"].get("query") for s in spans} == {"***", None}
    (embedding,) = of_type(spans, "llama_index:embedding")
    assert embedding["payload"]["inputs"] == "***"


class _InterruptedLLM(CustomLLM):
    """An LLM whose call is interrupted the way a signal handler or Ctrl-C interrupts it."""

    interruption: str = "SystemExit"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="interrupted")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.interruption == "SystemExit":
            sys.exit(0)  # what an application's SIGTERM handler typically does
        raise KeyboardInterrupt

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        raise NotImplementedError


@pytest.mark.parametrize("interruption", [SystemExit, KeyboardInterrupt])
def test_query_interrupted_by_exit_or_ctrl_c_is_cancelled(
    local_server: LocalServer,
    traced: PrefactorSpanHandler,
    index: VectorStoreIndex,
    interruption: type[BaseException],
) -> None:
    engine = index.as_query_engine(llm=_InterruptedLLM(interruption=interruption.__name__))
    with pytest.raises(interruption):
        engine.query("Will this finish?")

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "cancelled"
    root = check_tree(spans, root_type="llama_index:query")
    assert root["status"] == "cancelled"
    assert root["result_payload"]["reason"] == interruption.__name__
    (llm,) = of_type(spans, "llama_index:llm")
    assert llm["status"] == "cancelled"
    assert "error" not in llm["result_payload"]
    assert traced.stats()["open_runs"] == 0


def test_trace_ingestion_makes_a_pipeline_run_one_instance_with_its_steps(
    local_server: LocalServer,
) -> None:
    from llama_index.core import Document
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter

    handler = instrument(make_client(local_server), trace_ingestion=True)
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(), MockEmbedding(embed_dim=8)])
    nodes = pipeline.run(documents=[Document(text=f"{c} is in {k}.") for k, c in CITIES.items()])

    instance, spans = only_instance(local_server, handler)
    assert instance["status"] == "complete"
    root = check_tree(spans, root_type="llama_index:span")
    assert shape(spans) == "\n".join(["span", "  span", "  embedding"]), outline(spans)
    assert root["payload"]["name"] == "IngestionPipeline.run"
    assert root["payload"]["transformations"] == ["SentenceSplitter", "MockEmbedding"]
    assert root["result_payload"]["output_count"] == len(nodes) == 4
    (split,) = [s for s in spans if s["payload"]["name"] == "SentenceSplitter.__call__"]
    assert split["parent_span_id"] == root["id"]
    assert split["payload"] == {
        "name": "SentenceSplitter.__call__",
        "class": "SentenceSplitter",
        "input_count": 4,
    }
    assert split["result_payload"]["output_count"] == 4
    (embedding,) = of_type(spans, "llama_index:embedding")
    assert embedding["result_payload"] == {"count": 4, "dimension": 8}


def test_a_pipeline_run_is_not_traced_without_trace_ingestion(
    local_server: LocalServer, traced: PrefactorSpanHandler
) -> None:
    from llama_index.core import Document
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.ingestion import IngestionPipeline

    IngestionPipeline(transformations=[MockEmbedding(embed_dim=8)]).run(
        documents=[Document(text="not traced")]
    )
    assert stored(local_server, traced) == []


def test_index_building_wrapped_in_a_dispatcher_span_is_one_instance(
    local_server: LocalServer,
) -> None:
    from _li_support import build_index
    from llama_index_instrumentation import get_dispatcher

    dispatcher = get_dispatcher("my_app.indexing")
    handler = instrument(make_client(local_server), trace_ingestion=True)

    @dispatcher.span
    def rebuild() -> VectorStoreIndex:
        return build_index()

    rebuild()
    instance, spans = only_instance(local_server, handler)
    assert instance["status"] == "complete"
    check_tree(spans, root_type="llama_index:span")
    assert shape(spans) == "\n".join(["span", "  embedding"]), outline(spans)
    (embedding,) = of_type(spans, "llama_index:embedding")
    assert embedding["result_payload"] == {"count": len(CITIES), "dimension": 8}


async def test_trace_ingestion_traces_an_async_pipeline_run(local_server: LocalServer) -> None:
    from llama_index.core import Document
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter

    handler = instrument(make_client(local_server), trace_ingestion=True)
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(), MockEmbedding(embed_dim=8)])
    await pipeline.arun(documents=[Document(text=f"{c} is in {k}.") for k, c in CITIES.items()])

    instance, spans = only_instance(local_server, handler)
    assert instance["status"] == "complete"
    root = check_tree(spans, root_type="llama_index:span")
    assert root["payload"]["name"] == "IngestionPipeline.arun"
    # the async path calls node parsers through uninstrumented methods: their internals fold
    assert shape(spans) == "\n".join(["span", "  embedding"]), outline(spans)
    assert root["result_payload"]["output_count"] == 4
