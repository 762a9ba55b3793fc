"""``ScriptedChatModel``: a LangChain chat model that plays a scripted conversation offline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

__all__ = ["ScriptedChatModel", "ToolCallSpec", "Turn"]

ToolCallSpec = Mapping[str, Any]
"""One tool call the model makes: ``{"name": "add", "args": {"a": 2, "b": 3}}`` (``"id"``
optional; a stable one is made up when missing)."""

Turn = str | Sequence[ToolCallSpec] | AIMessage
"""One reply of the model: a final text answer, a list of tool calls made together (parallel
calls), or a ready-made ``AIMessage``."""


def _words(text: str) -> int:
    return len(text.split())


def _text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return " ".join(parts)


class ScriptedChatModel(BaseChatModel):
    """A chat model that plays a tool-calling conversation without any provider or network.

    The script is a list of turns, one per model call *within the current user request*: the
    number of AI messages after the last human message picks the turn. So the same model object
    replays its script for every new request, serves concurrent runs, and drives a
    ``langchain.agents.create_agent`` loop (tool calls, then the final answer) without state.

    >>> model = ScriptedChatModel(
    ...     tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}}],
    ...     answer="It is sunny in Paris.",
    ... )

    plays two turns: a message calling ``get_weather``, then ``"It is sunny in Paris."``.
    ``turns=[...]`` gives the full script instead (see :data:`Turn`); once it is used up, the
    model answers ``answer``.

    Every reply carries ``usage_metadata`` (an estimate from word counts unless ``usage`` fixes
    it; none with ``report_usage=False``) and ``response_metadata`` with ``model_name`` and
    ``finish_reason``. ``stream()`` / ``astream()`` yield the reply word by word, with the tool
    calls and usage on the last chunk, as real providers do. ``bind_tools`` records the tools'
    schemas like a provider integration would (the script decides what is called).

    Fields:
        model_name: reported as the model (``ls_model_name`` and ``response_metadata``).
        tool_calls: the tool calls of the first reply (made together) when ``turns`` is unset.
        answer: the final answer (also the reply once the script is used up).
        turns: the whole script, overriding ``tool_calls``.
        tool_call_text: text content of a tool-calling reply (real models often send "").
        usage: fixed ``usage_metadata`` for every reply (``input_tokens``, ``output_tokens``,
            ``total_tokens``).
        report_usage: set False to send no usage at all.
        latency: seconds to wait before each reply (``time.sleep`` / ``asyncio.sleep``).
        token_delay: seconds to wait between streamed chunks.
        error: raised by every call instead of replying (to test failure paths).
    """

    model_name: str = "scripted-chat"
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    answer: str = "Done."
    turns: list[Any] | None = None
    tool_call_text: str = ""
    usage: dict[str, int] | None = None
    report_usage: bool = True
    latency: float = 0.0
    token_delay: float = 0.0
    error: BaseException | None = None

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "scripted"
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools as a provider integration would (their OpenAI-style schemas)."""
        schemas = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=schemas, **kwargs)

    # -- the script --------------------------------------------------------------------------

    def script(self) -> list[Turn]:
        """The turns this model plays, in order."""
        if self.turns is not None:
            return list(self.turns)
        if self.tool_calls:
            return [list(self.tool_calls), self.answer]
        return [self.answer]

    def reply_for(self, messages: Sequence[BaseMessage]) -> AIMessage:
        """The reply to ``messages`` (what a call with that conversation returns)."""
        if self.error is not None:
            raise self.error
        turn_index = 0
        for message in reversed(messages):
            if isinstance(message, HumanMessage):
                break
            if isinstance(message, AIMessage):
                turn_index += 1
        script = self.script()
        turn: Turn = script[turn_index] if turn_index < len(script) else self.answer
        reply = self._message_for(turn, turn_index)
        if self.report_usage and reply.usage_metadata is None:
            reply.usage_metadata = self._usage_for(messages, reply)
        return reply

    def _message_for(self, turn: Turn, index: int) -> AIMessage:
        metadata: dict[str, Any] = {"model_name": self.model_name}
        if isinstance(turn, AIMessage):
            return turn.model_copy(deep=True)
        if isinstance(turn, str):
            metadata["finish_reason"] = "stop"
            return AIMessage(content=turn, response_metadata=metadata)
        calls = []
        for position, spec in enumerate(turn):
            if "name" not in spec:
                raise ValueError(f"a scripted tool call needs a 'name': {dict(spec)!r}")
            calls.append(
                {
                    "name": str(spec["name"]),
                    "args": dict(spec.get("args") or {}),
                    "id": str(spec.get("id") or f"call_{index}_{position}"),
                    "type": "tool_call",
                }
            )
        metadata["finish_reason"] = "tool_calls"
        return AIMessage(
            content=self.tool_call_text,
            tool_calls=calls,
            response_metadata=metadata,
        )

    def _usage_for(self, messages: Sequence[BaseMessage], reply: AIMessage) -> UsageMetadata:
        if self.usage is not None:
            fixed = dict(self.usage)
            prompt = int(fixed.get("input_tokens", 0))
            completion = int(fixed.get("output_tokens", 0))
            total = int(fixed.get("total_tokens", prompt + completion))
            return UsageMetadata(input_tokens=prompt, output_tokens=completion, total_tokens=total)
        prompt = sum(_words(_text_of(m)) + 3 for m in messages)
        completion = _words(_text_of(reply)) + sum(
            4 + len(json.dumps(c["args"]).split()) for c in reply.tool_calls
        )
        completion = max(completion, 1)
        return UsageMetadata(
            input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
        )

    # -- BaseChatModel -----------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency > 0:
            time.sleep(self.latency)
        return ChatResult(generations=[ChatGeneration(message=self.reply_for(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        return ChatResult(generations=[ChatGeneration(message=self.reply_for(messages))])

    def _chunks(self, reply: AIMessage) -> list[AIMessageChunk]:
        text = _text_of(reply)
        words = text.split(" ") if text else []
        chunks = [
            AIMessageChunk(content=word if i == len(words) - 1 else word + " ")
            for i, word in enumerate(words)
        ]
        chunks.append(
            AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {
                        "name": call["name"],
                        "args": json.dumps(call["args"]),
                        "id": call["id"],
                        "index": i,
                        "type": "tool_call_chunk",
                    }
                    for i, call in enumerate(reply.tool_calls)
                ],
                usage_metadata=reply.usage_metadata,
                response_metadata=dict(reply.response_metadata),
                chunk_position="last",
            )
        )
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self.latency > 0:
            time.sleep(self.latency)
        for i, chunk in enumerate(self._chunks(self.reply_for(messages))):
            if i and self.token_delay > 0:
                time.sleep(self.token_delay)
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        for i, chunk in enumerate(self._chunks(self.reply_for(messages))):
            if i and self.token_delay > 0:
                await asyncio.sleep(self.token_delay)
            yield ChatGenerationChunk(message=chunk)
