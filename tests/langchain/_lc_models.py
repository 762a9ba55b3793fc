"""Fake chat model, tools, a LangGraph graph and an LCEL chain for the adapter tests."""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, TypedDict

from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForLLMRun, dispatch_custom_event
from langchain_core.callbacks.manager import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, StateGraph

USAGE_TOOL_CALL = {
    "input_tokens": 12,
    "output_tokens": 7,
    "total_tokens": 19,
    "input_token_details": {"cache_read": 4},
    "output_token_details": {"reasoning": 2},
}
USAGE_ANSWER = {"input_tokens": 30, "output_tokens": 5, "total_tokens": 35}
ANSWER = "The answer is 5"


class ChatScripted(BaseChatModel):
    """A chat model that calls ``tool_name`` once (if set) and then answers ``ANSWER``.

    Streaming: langchain-core reports each yielded chunk to the callbacks itself.
    The reply depends only on the conversation (last message human -> tool call, otherwise the
    answer), so one model can serve many concurrent runs. Streams token by token, with tool calls
    and usage on the last chunk, like real providers. ``fail_with`` makes every call raise.
    """

    model_name: str = "scripted-1"
    tool_name: str | None = None
    tool_args: dict[str, Any] = {"a": 2, "b": 3}
    fail_with: Exception | None = None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, Any]:
        return self.bind(tools=[getattr(t, "name", str(t)) for t in tools])

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        if self.fail_with is not None:
            raise self.fail_with
        last = messages[-1] if messages else None
        if self.tool_name and not isinstance(last, ToolMessage):
            call_id = f"call-{len(messages)}"
            return AIMessage(
                content="Let me compute that",
                tool_calls=[{"name": self.tool_name, "args": dict(self.tool_args), "id": call_id}],
                usage_metadata=dict(USAGE_TOOL_CALL),  # type: ignore[arg-type]
                response_metadata={"model_name": self.model_name, "finish_reason": "tool_calls"},
            )
        return AIMessage(
            content=ANSWER,
            usage_metadata=dict(USAGE_ANSWER),  # type: ignore[arg-type]
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        words = str(reply.content).split(" ")
        for i, word in enumerate(words):
            token = word if i == len(words) - 1 else word + " "
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {"name": tc["name"], "args": json.dumps(tc["args"]), "id": tc["id"], "index": i}
                    for i, tc in enumerate(reply.tool_calls)
                ],
                usage_metadata=reply.usage_metadata,
                response_metadata=reply.response_metadata,
                chunk_position="last",
            )
        )


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def make_agent(
    *,
    tools: Sequence[BaseTool] | None = None,
    model: BaseChatModel | None = None,
    middleware: Sequence[Any] = (),
) -> Any:
    """``langchain.agents.create_agent`` with the scripted model calling the first tool."""
    tools = list(tools) if tools is not None else [add]
    model = model or ChatScripted(tool_name=tools[0].name if tools else None)
    return create_agent(model, tools, middleware=list(middleware))


AGENT_OUTLINE = """\
langchain:agent LangGraph
  langchain:node model
    langchain:llm scripted-1
  langchain:node tools
    langchain:tool add
  langchain:node model
    langchain:llm scripted-1"""


# -- a LangGraph graph: router fan-out to parallel branches, then a subgraph -------------------


class GraphState(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]
    summary: str


class DraftState(TypedDict):
    notes: list[str]
    summary: str


def _draft(state: DraftState) -> dict[str, Any]:
    reply = ChatScripted(model_name="drafter").invoke(f"Summarise: {state['notes']}")
    return {"summary": str(reply.content)}


def _polish(state: DraftState) -> dict[str, Any]:
    return {"summary": state["summary"].strip() + "."}


def _plan(state: GraphState) -> dict[str, Any]:
    dispatch_custom_event("plan_ready", {"topic": state["topic"], "branches": 2})
    return {"notes": [f"plan:{state['topic']}"]}


def _route(state: GraphState) -> list[str]:
    return ["left", "right"]


def make_graph() -> Any:
    """plan -(router)-> left | right (parallel) -> summarize (a subgraph: draft -> polish)."""
    sub = StateGraph(DraftState)
    sub.add_node("draft", _draft)
    sub.add_node("polish", _polish)
    sub.add_edge(START, "draft")
    sub.add_edge("draft", "polish")
    sub.add_edge("polish", END)
    summarize = sub.compile()

    graph = StateGraph(GraphState)
    graph.add_node("plan", _plan)
    graph.add_node("left", lambda s: {"notes": ["left"]})
    graph.add_node("right", lambda s: {"notes": ["right"]})
    graph.add_node("summarize", summarize)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", _route, ["left", "right"])
    graph.add_edge("left", "summarize")
    graph.add_edge("right", "summarize")
    graph.add_edge("summarize", END)
    return graph.compile()


GRAPH_OUTLINE = """\
langchain:agent LangGraph
  langchain:node plan
  langchain:node left
  langchain:node right
  langchain:node summarize
    langchain:chain LangGraph
      langchain:node draft
        langchain:llm drafter
      langchain:node polish"""


# -- an LCEL chain with a retriever --------------------------------------------------------------

DOCS = [
    Document(page_content="Prefactor traces agents. " * 200, metadata={"source": "a.md"}, id="a"),
    Document(page_content="LangGraph runs graphs.", metadata={"source": "b.md"}, id="b"),
]


class KeywordRetriever(BaseRetriever):
    """Returns every document (the query is only recorded)."""

    docs: list[Document] = DOCS
    fail: bool = False

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.fail:
            raise LookupError("index offline")
        return list(self.docs)


def _format_docs(docs: list[Document]) -> str:
    return "\n".join(d.page_content[:50] for d in docs)


def make_rag_chain(retriever: BaseRetriever | None = None) -> Runnable[Any, Any]:
    """{context: retriever | format, question} | prompt | model | parser."""
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context:\n{context}"), ("human", "{question}")]
    )
    retriever = retriever or KeywordRetriever()
    return (
        {"context": retriever | _format_docs, "question": RunnablePassthrough()}
        | prompt
        | ChatScripted()
        | StrOutputParser()
    )


RAG_OUTLINE = """\
langchain:agent RunnableSequence
  langchain:chain RunnableParallel<context,question>
    langchain:chain RunnablePassthrough
    langchain:chain RunnableSequence
      langchain:retriever KeywordRetriever
      langchain:chain _format_docs
  langchain:chain ChatPromptTemplate
  langchain:llm scripted-1
  langchain:chain StrOutputParser"""
