"""Typed dependency aliases: routes declare what they need, the app state provides it.

The providers are coroutines on purpose: FastAPI runs a plain ``def`` dependency in the thread
pool, a hop that costs more than these attribute reads (measured with bench/serving_bench.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from functions.api.auth import Principal, current_principal
from functions.api.model_cache import ModelCache
from tracking import ExperimentLogger, ModelRegistry
from tracking.stores.ports.idempotency import IdempotencyStore


async def _registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def _logger(request: Request) -> ExperimentLogger:
    logger: ExperimentLogger = request.app.state.logger
    return logger


async def _idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.idempotency
    return store


async def _cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
LoggerDep = Annotated[ExperimentLogger, Depends(_logger)]
CacheDep = Annotated[ModelCache, Depends(_cache)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(_idempotency)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
