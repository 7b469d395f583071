"""The served models: loaded once, verified, warmed up, refreshed at most every N seconds.

At start (the Lambda init phase) each served model's ``production`` version is downloaded into a
private cache folder, checked against the registry's SHA-256, loaded and warmed up. A request
reads the alias again only when ``MODEL_REFRESH_SECONDS`` have passed since the last check, and only
one request does it (the others keep serving); a moved alias loads the new version and swaps it in
with one assignment. A failed refresh keeps the verified model serving and is reported by
``/health``. Predictions never touch DynamoDB or S3.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.api import heap
from functions.api.errors import ApiError
from functions.api.observability import METRICS
from functions.api.traffic import Split
from models.catalog import load_served
from models.serving import Predictor, ServedModel
from tracking import IntegrityError, ModelRegistry, NotFound, TrackingError

log = logging.getLogger(__name__)

PRODUCTION = "production"
PINNED_CACHE_SIZE = 4


@dataclass(frozen=True)
class Loaded:
    """A loaded version and how it is served (its request schema, outcome label)."""

    served: ServedModel
    predictor: Predictor


@dataclass
class ModelState:
    """What is served for one model name, and how the last refresh went."""

    name: str
    loaded: Loaded | None = None
    loaded_at: float | None = None
    checked_at: float = float("-inf")  # monotonic time of the last alias read
    last_refresh_at: float | None = None  # wall time
    last_refresh_ok: bool | None = None
    last_error: str | None = None
    error_code: str = "no_production_model"
    #: The model's traffic policy when it is not the default (production only), and the loaded
    #: versions of the other aliases it names; read together by requests, swapped by refreshes.
    split: Split | None = None
    variants: dict[str, Loaded] = field(default_factory=dict)
    traffic_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def predictor(self) -> Predictor | None:
        return None if self.loaded is None else self.loaded.predictor

    def describe(self) -> dict[str, Any]:
        version = None if self.predictor is None else self.predictor.version
        return {
            "model": self.name,
            "version": None if version is None else version.label,
            "sha256": None if version is None else version.sha256[:12],
            "loaded_at": self.loaded_at,
            "last_refresh_at": self.last_refresh_at,
            "last_refresh_ok": self.last_refresh_ok,
            "last_error": self.last_error,
            "degraded": self.predictor is None or self.last_refresh_ok is False,
            "traffic": None if self.split is None else {
                "policy_id": self.split.policy_id,
                "weights": {alias: self._label(alias) for _, alias in self.split.bounds},
                "shadow": {alias: self._label(alias) for alias in self.split.shadow},
                "unavailable": self.traffic_error,
            },
        }  # fmt: skip

    def serving(self) -> dict[int, Loaded]:
        """The loaded versions in use (production and the policy's variants), by identity (the
        values keep them alive, so an identity is not reused while the dict is held)."""
        loaded = (self.loaded, *self.variants.values())
        return {id(version): version for version in loaded if version is not None}

    def _label(self, alias: str) -> str | None:
        loaded = self.loaded if alias == PRODUCTION else self.variants.get(alias)
        return None if loaded is None else loaded.predictor.label


class ModelCache:
    """Loads, verifies and serves registered versions (see the module docstring)."""

    def __init__(
        self,
        registry: ModelRegistry,
        names: tuple[str, ...],
        *,
        refresh_seconds: float,
        cache_dir: Path,
        allow_pickle: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self.cache_dir = cache_dir
        self.allow_pickle = allow_pickle
        self.clock = clock
        self.states = {name: ModelState(name) for name in names}
        self._pinned: OrderedDict[tuple[str, int], Loaded] = OrderedDict()
        self._aliases: dict[tuple[str, str], tuple[float, int]] = {}
        self._pinned_lock = threading.Lock()

    # -- serving ------------------------------------------------------------------------------

    def start(self) -> None:
        """Load every served model's production version now (the init phase)."""
        for state in self.states.values():
            with state.lock:
                self._refresh(state)

    def get(self, name: str) -> Loaded:
        """The production version of ``name``, refreshed if the interval has passed.

        Raises:
            NotFound: ``name`` is not served here.
            ApiError: 503 when nothing verified can be served: ``no_production_model`` (the
                alias points nowhere), ``model_integrity_error`` (the bytes fail their SHA-256)
                or ``model_unavailable`` (the artifact is missing or cannot be loaded).
        """
        state = self._state(name)
        if self.clock() - state.checked_at >= self.refresh_seconds and state.lock.acquire(
            blocking=False
        ):
            try:
                self._refresh(state)
            finally:
                state.lock.release()
        loaded = state.loaded
        if loaded is None:
            message = {
                "no_production_model": f"model {name!r} has no production version",
                "model_integrity_error": f"model {name!r} failed its SHA-256 check",
            }.get(state.error_code, f"model {name!r} could not be loaded")
            raise ApiError(503, state.error_code, message, headers={"Retry-After": "30"})
        return loaded

    def get_pinned(self, name: str, *, version: int | None, alias: str | None) -> Loaded:
        """A specific version, or the one a (non-production) alias points at, for testing.

        Raises:
            NotFound: no such model, version or alias target.
        """
        self._state(name)
        if version is None:
            assert alias is not None
            if alias == PRODUCTION:
                return self.get(name)
            version = self._resolve_alias(name, alias)
        key = (name, version)
        with self._pinned_lock:
            cached = self._pinned.get(key)
            if cached is not None:
                self._pinned.move_to_end(key)
                return cached
        loaded = self._load(name, version=version)
        with self._pinned_lock:
            self._pinned[key] = loaded
            while len(self._pinned) > PINNED_CACHE_SIZE:
                self._pinned.popitem(last=False)
        return loaded

    def traffic(self, name: str) -> tuple[Split | None, dict[str, Loaded]]:
        """The policy's split (``None``: production only) and its loaded non-production variants.

        Read after ``get``, which refreshes them with production; a variant that is not loaded
        (its alias points nowhere or failed to load) is served by production instead.
        """
        state = self.states[name]
        return state.split, state.variants

    def health(self) -> list[dict[str, Any]]:
        return [state.describe() for state in self.states.values()]

    def ready(self) -> bool:
        return not self.unavailable()

    def unavailable(self) -> list[str]:
        """The served models with nothing verified to serve (each answers 503; the rest serve)."""
        return [name for name, state in self.states.items() if state.loaded is None]

    def served_model(self, name: str) -> ServedModel | None:
        """How ``name``'s production version is served, when one is loaded."""
        state = self._state(name)
        return None if state.loaded is None else state.loaded.served

    # -- internals ----------------------------------------------------------------------------

    def _state(self, name: str) -> ModelState:
        state = self.states.get(name)
        if state is None:
            raise NotFound(f"model {name!r} is not served by this API")
        return state

    def _resolve_alias(self, name: str, alias: str) -> int:
        now = self.clock()
        cached = self._aliases.get((name, alias))
        if cached is not None and now - cached[0] < self.refresh_seconds:
            return cached[1]
        number = self.registry.get_version_by_alias(name, alias).version
        self._aliases[(name, alias)] = (now, number)
        return number

    def _load(self, name: str, *, version: int) -> Loaded:
        started = time.perf_counter()
        served, predictor = load_served(
            self.registry,
            name,
            version=version,
            allow_pickle=self.allow_pickle,
            cache_dir=self.cache_dir,
        )
        predictor.warm_up()
        METRICS.model_load_seconds.labels(model=name).observe(time.perf_counter() - started)
        return Loaded(served, predictor)

    def _refresh(self, state: ModelState) -> None:
        """Read the production alias and the traffic policy; load and swap what moved. Never
        raises."""
        before = state.serving()
        self._refresh_production(state)
        swapped = bool(before.keys() - state.serving().keys())
        del before  # the collection after a swap must find the old versions unreferenced
        if swapped:
            # A version loaded before a server froze its heap is never collected as garbage,
            # and its schemas are cycles (functions/api/heap.py).
            heap.after_swap()

    def _refresh_production(self, state: ModelState) -> None:
        state.checked_at = self.clock()
        state.last_refresh_at = time.time()
        try:
            target = self.registry.get_version_by_alias(state.name, PRODUCTION)
        except NotFound as exc:
            # No production version (yet): nothing to serve unless something was served before.
            state.error_code = "no_production_model"
            self._failed(state, exc, counts=state.loaded is not None)
            return
        except Exception as exc:
            self._load_failed(state, exc)
            return
        try:
            current = None if state.predictor is None else state.predictor.version
            if current is None or (current.version, current.sha256) != (
                target.version,
                target.sha256,
            ):
                # One assignment: requests see the old version or the new one, whole.
                state.loaded = self._load(state.name, version=target.version)
                state.loaded_at = time.time()
                log.info("serving %s %s", state.name, target.label)
            state.last_refresh_ok, state.last_error = True, None
            self._refresh_traffic(state)
        except Exception as exc:
            # A NotFound here is the production version's artifact gone, not a missing
            # version: "no production model" would send operators the wrong way.
            self._load_failed(state, exc)

    def _refresh_traffic(self, state: ModelState) -> None:
        """Read the traffic policy; load the versions its aliases point at when they moved.

        Never raises: a policy that cannot be read keeps the split in force, and an alias that
        cannot be loaded keeps its verified version (or, with none, is answered by production).
        """
        try:
            split = Split.of(self.registry.get_traffic(state.name))
        except Exception as exc:
            state.traffic_error = getattr(exc, "code", type(exc).__name__)
            log.warning("reading the traffic policy of %s failed: %s", state.name, exc)
            return
        if split is None:
            state.split, state.variants, state.traffic_error = None, {}, None
            return
        variants: dict[str, Loaded] = {}
        failed = []
        for alias in split.aliases:
            if alias == PRODUCTION:
                continue
            current = state.variants.get(alias)
            try:
                target = self.registry.get_version_by_alias(state.name, alias)
                served = None if current is None else current.predictor.version
                if served is not None and (served.version, served.sha256) == (
                    target.version,
                    target.sha256,
                ):
                    variants[alias] = current  # type: ignore[assignment]
                else:
                    variants[alias] = self._load(state.name, version=target.version)
            except Exception as exc:
                failed.append(alias)
                if current is not None:
                    variants[alias] = current
                METRICS.refresh_failures.labels(model=state.name).inc()
                log.warning("loading %s alias %s failed: %s", state.name, alias, exc)
        # Variants first: a request that sees the new split finds its variants loaded.
        state.variants = variants
        state.split = split
        state.traffic_error = ", ".join(failed) or None

    def _load_failed(self, state: ModelState, exc: Exception) -> None:
        if isinstance(exc, IntegrityError):
            state.error_code = "model_integrity_error"
        else:
            state.error_code = "model_unavailable"
            if not isinstance(exc, TrackingError):  # a broken artifact must not take us down
                log.exception("loading %s failed", state.name)
        self._failed(state, exc, counts=True)

    @staticmethod
    def _failed(state: ModelState, exc: Exception, *, counts: bool) -> None:
        state.last_refresh_ok = False
        state.last_error = getattr(exc, "code", type(exc).__name__)
        if counts:
            METRICS.refresh_failures.labels(model=state.name).inc()
        log.warning("refresh of %s failed: %s", state.name, state.last_error)
