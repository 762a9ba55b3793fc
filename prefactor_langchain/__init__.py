"""The published ``prefactor-langchain`` import name: ``from prefactor_langchain import
PrefactorMiddleware`` keeps working (see ``prefactor_integrations.langchain``)."""

from __future__ import annotations

from prefactor_integrations.langchain import LangChainToolSchemaConfig, PrefactorMiddleware

__all__ = ["LangChainToolSchemaConfig", "PrefactorMiddleware"]
