"""LlamaIndex and LangChain both instrumented: work of one inside the other is one instance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _li_support import check_tree, make_client, mock_llm, of_type, outline, parent_of, stored
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import tool
from llama_index.core import VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool

from prefactor_integrations import langchain as lc
from prefactor_integrations.llama_index import PrefactorSpanHandler, instrument
from prefactor_local.server import LocalServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def both(local_server: LocalServer) -> Iterator[PrefactorSpanHandler]:
    """Both adapters instrumented against the same client."""
    client = make_client(local_server)
    handler = instrument(client)
    lc.instrument(client=client)
    yield handler
    lc.uninstrument()


def test_llama_index_query_inside_a_langchain_tool_is_one_instance(
    local_server: LocalServer, both: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=mock_llm())

    @tool
    def lookup(question: str) -> str:
        """Answer from the document index."""
        return str(engine.query(question))

    ask: RunnableLambda[str, dict[str, str]] = RunnableLambda(lambda q: {"question": q})
    chain: Runnable[str, Any] = ask | lookup
    answer = chain.invoke("Where is Nairobi?")
    assert answer

    runs = stored(local_server, both)
    assert len(runs) == 1, [outline(s) for _, s in runs]
    instance, spans = runs[0]
    assert instance["status"] == "complete"
    check_tree(spans, root_type="langchain:agent")
    (query,) = of_type(spans, "llama_index:query")
    assert parent_of(spans, query)["schema_name"] == "langchain:tool", outline(spans)
    assert query["payload"]["query"] == "Where is Nairobi?"
    assert of_type(spans, "llama_index:retrieve")


async def test_langchain_chain_inside_a_llama_index_tool_is_one_instance(
    local_server: LocalServer, both: PrefactorSpanHandler
) -> None:
    shout = RunnableLambda(lambda text: text.upper()).with_config(run_name="shout")

    async def loud(text: str = "hello") -> str:
        """Shout the text."""
        return str(await shout.ainvoke(text))

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(async_fn=loud)], llm=MockFunctionCallingLLM()
    )
    await agent.run("Say hello loudly")

    runs = stored(local_server, both)
    assert len(runs) == 1, [outline(s) for _, s in runs]
    instance, spans = runs[0]
    assert instance["status"] == "complete"
    check_tree(spans, root_type="llama_index:agent")
    (tool_span,) = of_type(spans, "llama_index:tool")
    assert tool_span["result_payload"]["output"] == "HELLO"
    langchain_spans = [s for s in spans if s["schema_name"].startswith("langchain:")]
    assert langchain_spans, outline(spans)
    top = [s for s in langchain_spans if not parent_of(spans, s)["schema_name"].startswith("lang")]
    assert [parent_of(spans, s)["id"] for s in top] == [tool_span["id"]], outline(spans)
