"""``ModelRegistry``: versions, aliases (``staging``, ``production``, custom), audit history.

Rules, applied here for every backend (the stores only apply prepared changes atomically):

- Versions are integers from 1, allocated with a conditional write; a registration that loses a
  race retries with the next number, so two registrations never share a number.
- Each alias points at one version. ``production`` and ``staging`` also set the version's stage:
  the new production version becomes ``production`` and the one it replaces ``archived``; the new
  staging version becomes ``staging`` and the one it replaces ``none``. A version holds at most one
  of the two: promoting the staging version to production takes it out of staging.
- ``rollback`` moves an alias back to the version it pointed at before, in one step.
- Every move appends an entry (action, from, to, actor, time, reason) to an append-only history.
- Moves are optimistic: a move read against an alias revision that changed before it was applied
  raises ``Conflict`` and changes nothing.
"""

from __future__ import annotations

import getpass
import json
import random
import re
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tracking import signatures
from tracking.artifacts.base import ArtifactStore
from tracking.backends import build_stores
from tracking.clock import now_ms
from tracking.config import TrackingConfig, load_config
from tracking.entities import (
    PICKLE_FLAVORS,
    RESERVED_ALIASES,
    AliasChange,
    AliasState,
    FeatureSpec,
    Flavor,
    HistoryAction,
    ModelVersion,
    Page,
    RegisteredModel,
    Stage,
    TrafficPolicy,
)
from tracking.errors import Conflict, InvalidInput, NotFound
from tracking.flavors import (
    check_onnx_artifact,
    check_retriever_artifact,
    check_xgboost_artifact,
    load_model,
    parse_flavor,
)
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE
from tracking.stores.ports.registry import AliasWrite, check_tags
from tracking.stores.ports.store import TrackingStore
from tracking.validation import validate_name, validate_tags

PRODUCTION, STAGING = RESERVED_ALIASES
#: How many earlier targets an alias remembers for rollback.
ROLLBACK_DEPTH = 50
REGISTER_ATTEMPTS = 50
MAX_DESCRIPTION = 5000
MAX_REASON = 1000
#: A version's free-form metadata, as JSON. With the tag bound (``MAX_TAG_BYTES``) this keeps a
#: version's record well inside DynamoDB's item limit on every backend.
MAX_METADATA_BYTES = 64 * 1024
#: Aliases one traffic policy may name (weighted and shadow together): each is a model the API
#: keeps loaded, so the bound is also one on its memory.
MAX_TRAFFIC_ALIASES = 8
#: A sticky field is a request field name (``player_id``), not a path or an expression.
STICKY_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return "unknown"


def _text(value: str | None, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{what} must be text of at most {limit} characters")
    return value


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    data = dict(metadata or {})
    try:
        size = len(json.dumps(data, allow_nan=False).encode())
    except (TypeError, ValueError):
        raise InvalidInput(
            "metadata must be JSON: strings, finite numbers, booleans, null, lists and objects"
        ) from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"metadata takes {size} bytes as JSON; the limit is {MAX_METADATA_BYTES} bytes"
        )
    return data


#: What ``register_model`` takes as a signature (see there).
SignatureLike = (
    type[BaseModel] | Sequence[FeatureSpec | Mapping[str, Any]] | Mapping[str, str] | None
)


def _version_number(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"model version must be a positive integer, not {version!r}")
    return version


def _signature(signature: object) -> list[FeatureSpec] | None:
    if signature is None:
        return None
    try:
        if isinstance(signature, type) and issubclass(signature, BaseModel):
            specs = signatures.from_model(signature)
        elif isinstance(signature, Mapping):
            specs = [FeatureSpec(name=str(k), type=str(v)) for k, v in signature.items()]
        elif isinstance(signature, Sequence) and not isinstance(signature, str):
            specs = [
                spec if isinstance(spec, FeatureSpec) else FeatureSpec.model_validate(spec)
                for spec in signature
            ]
        else:
            raise TypeError
    except (TypeError, ValueError):
        raise InvalidInput(
            "a signature is a pydantic model, a mapping of feature names to types, or a list of "
            "{'name', 'type', ...} items"
        ) from None
    for spec in specs:
        validate_name(spec.name, "signature feature name")
    return specs


class ModelRegistry:
    """Register trained models and move them between stages.

    Args:
        tracking_uri, artifact_uri: as for ``ExperimentLogger`` (default: the environment, else
            the embedded store).
        store, artifact_store: ready-made stores.
        actor: who is acting, recorded in the history (default ``TRACKING_ACTOR``, else the OS
            user).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_uri: str | None = None,
        *,
        store: TrackingStore | None = None,
        artifact_store: ArtifactStore | None = None,
        config: TrackingConfig | None = None,
        actor: str | None = None,
    ) -> None:
        self.config = config or load_config(tracking_uri, artifact_uri)
        if store is None or artifact_store is None:
            built_store, built_artifacts = build_stores(self.config)
            store = store or built_store
            artifact_store = artifact_store or built_artifacts
        self.store = store
        self.artifacts = artifact_store
        self._actor = actor

    def _actor_for(self, actor: str | None) -> str:
        chosen = actor or self._actor or self.config.actor or _default_actor()
        return _text(chosen, "actor", 256) or "unknown"

    # -- registration ------------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        run_id: str,
        artifact: str,
        flavor: str | Flavor = Flavor.XGBOOST,
        signature: SignatureLike = None,
        description: str | None = None,
        tags: Mapping[str, object] | None = None,
        *,
        output_signature: SignatureLike = None,
        metadata: Mapping[str, Any] | None = None,
        allow_pickle: bool = False,
        actor: str | None = None,
    ) -> ModelVersion:
        """Register the run's artifact as the next version of model ``name``.

        The artifact is downloaded and checked against its recorded SHA-256; an ``xgboost``
        artifact must load as XGBoost's native JSON or UBJ (its feature names become the
        signature when none is given); a ``retriever`` artifact must be an index bundle that
        loads without pickle; an ``onnx`` artifact must open as an onnxruntime session. Pickle
        flavors need ``allow_pickle=True``.

        ``signature`` (the inputs) and ``output_signature`` (the response) are pydantic models
        (``ChurnFeatures``), lists of ``FeatureSpec`` or of their dicts, or name -> type
        mappings; ``tracking.signatures.infer`` builds one from a training frame.

        Raises:
            InvalidInput: bad name, flavor, signature, tags or metadata (too large, or not JSON);
                a pickle flavor without ``allow_pickle``; an xgboost artifact that is not native
                JSON/UBJ; a retriever artifact that is not a pickle-free index bundle; an onnx
                artifact onnxruntime cannot open. Nothing is written.
            NotFound: no such run, or the run has no artifact called ``artifact``.
            IntegrityError: the artifact's bytes do not match their recorded SHA-256.
        """
        validate_name(name, "model name")
        chosen_flavor = parse_flavor(flavor)
        if chosen_flavor in PICKLE_FLAVORS and not allow_pickle:
            raise InvalidInput(
                f"flavor {chosen_flavor.value!r} stores a pickle, which can run code when loaded; "
                "pass allow_pickle=True to register it, or save an XGBoost model as JSON/UBJ"
            )
        specs = _signature(signature)
        output_specs = _signature(output_signature) or []
        checked_tags = validate_tags(tags or {})
        check_tags(checked_tags, f"model {name!r}")
        checked_metadata = _metadata(metadata)
        description = _text(description, "description", MAX_DESCRIPTION)
        who = self._actor_for(actor)
        run = self.store.get_run(run_id)
        record = run.artifacts.get(artifact)
        if record is None:
            raise NotFound(f"run {run_id!r} has no artifact named {artifact!r}")
        with tempfile.TemporaryDirectory(prefix="tracking-register-") as folder:
            local = self.artifacts.download(
                record.uri, Path(folder) / Path(record.uri).name, record.sha256, record.size
            )
            if chosen_flavor is Flavor.XGBOOST:
                inferred = check_xgboost_artifact(local)
                specs = specs if specs is not None else inferred
            elif chosen_flavor is Flavor.RETRIEVER:
                check_retriever_artifact(local)
            elif chosen_flavor is Flavor.ONNX:
                check_onnx_artifact(local)

        for attempt in range(REGISTER_ATTEMPTS):
            try:
                latest = self.store.get_model(name).latest_version
            except NotFound:
                latest = 0
            now = now_ms()
            version = ModelVersion(
                name=name,
                version=latest + 1,
                run_id=run.run_id,
                experiment_name=run.experiment_name,
                artifact_name=artifact,
                artifact_uri=record.uri,
                sha256=record.sha256,
                size=record.size,
                flavor=chosen_flavor,
                signature=specs or [],
                output_signature=output_specs,
                description=description,
                tags=checked_tags,
                metadata=checked_metadata,
                stage=Stage.NONE,
                created_at=now,
                actor=who,
            )
            change = AliasChange(
                name=name,
                action=HistoryAction.REGISTER,
                to_version=version.version,
                actor=who,
                timestamp=now,
                change_id=uuid.uuid4().hex,
            )
            try:
                self.store.create_model_version(version, expected_latest=latest, change=change)
                return version
            except Conflict:
                # Another registration took the number: back off briefly and take the next one.
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise Conflict(f"could not allocate a version of model {name!r}: too much contention")

    # -- reading -----------------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        return self.store.get_model(name)

    def list_models(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        return self.store.list_models(max_results, page_token)

    def list_versions(
        self, name: str, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[ModelVersion]:
        """Versions, newest first."""
        return self.store.list_versions(name, max_results, page_token)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.store.get_version(name, _version_number(version))

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version ``alias`` points at.

        Raises:
            NotFound: no such model, or the alias points nowhere.
        """
        state = self.store.get_alias(name, validate_name(alias, "alias"))
        if state is None:
            raise NotFound(f"model {name!r} has no {alias!r} version")
        return self.store.get_version(name, state.version)

    def history(self, name: str) -> list[AliasChange]:
        """The model's audit history, oldest first."""
        return list(self.store.iter_history(name))

    # -- moves -------------------------------------------------------------------------------

    def promote(
        self,
        name: str,
        version: int,
        to: str = STAGING,
        reason: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Point alias ``to`` at ``version`` (``staging``, ``production`` or a custom alias).

        Raises:
            NotFound: no such model or version.
            InvalidInput: bad alias or version.
            Conflict: a concurrent move won; or staging was asked for the production version.
        """
        number = _version_number(version)
        alias = validate_name(to, "alias").lower()
        reason = _text(reason, "reason", MAX_REASON)
        target = self.store.get_version(name, number)
        current = self.store.get_alias(name, alias)
        if current is not None and current.version == number:
            return target
        writes = [_move(alias, current, number)]
        stages: dict[int, Stage] = {}
        if alias == PRODUCTION:
            stages[number] = Stage.PRODUCTION
            if current is not None:
                stages[current.version] = Stage.ARCHIVED
            staging = self.store.get_alias(name, STAGING)
            if staging is not None and staging.version == number:
                writes.append(AliasWrite(STAGING, staging.revision, None))
        elif alias == STAGING:
            production = self.store.get_alias(name, PRODUCTION)
            if production is not None and production.version == number:
                raise Conflict(f"version {number} of {name!r} is in production already")
            writes.append(_check(PRODUCTION, production))
            stages[number] = Stage.STAGING
            if current is not None:
                stages[current.version] = Stage.NONE
        self._apply(
            name, writes, stages, HistoryAction.PROMOTE, alias, current, number, reason, actor
        )
        return self.store.get_version(name, number)

    def rollback(
        self,
        name: str,
        alias: str = PRODUCTION,
        reason: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before this one.

        Raises:
            NotFound: no such model.
            Conflict: nothing to roll back to, or a concurrent move won.
        """
        alias = validate_name(alias, "alias").lower()
        reason = _text(reason, "reason", MAX_REASON)
        current = self.store.get_alias(name, alias)
        if current is None or not current.previous:
            raise Conflict(f"model {name!r} has no earlier {alias!r} version to roll back to")
        number = current.previous[-1]
        state = AliasState(
            alias=alias,
            version=number,
            previous=current.previous[:-1],
            revision=uuid.uuid4().hex,
        )
        writes = [AliasWrite(alias, current.revision, state)]
        stages: dict[int, Stage] = {}
        if alias == PRODUCTION:
            stages = {number: Stage.PRODUCTION, current.version: Stage.ARCHIVED}
            staging = self.store.get_alias(name, STAGING)
            if staging is not None and staging.version == number:
                writes.append(AliasWrite(STAGING, staging.revision, None))
        elif alias == STAGING:
            production = self.store.get_alias(name, PRODUCTION)
            if production is not None and production.version == number:
                raise Conflict(f"version {number} of {name!r} is in production")
            writes.append(_check(PRODUCTION, production))
            stages = {number: Stage.STAGING, current.version: Stage.NONE}
        self._apply(
            name, writes, stages, HistoryAction.ROLLBACK, alias, current, number, reason, actor
        )
        return self.store.get_version(name, number)

    def archive(
        self, name: str, version: int, reason: str | None = None, actor: str | None = None
    ) -> ModelVersion:
        """Mark a version ``archived`` (taking it out of staging if it was there).

        Raises:
            NotFound: no such model or version.
            Conflict: the version is in production (promote another or roll back first), or a
                concurrent move won.
        """
        number = _version_number(version)
        reason = _text(reason, "reason", MAX_REASON)
        self.store.get_version(name, number)
        production = self.store.get_alias(name, PRODUCTION)
        if production is not None and production.version == number:
            raise Conflict(
                f"version {number} of {name!r} is in production; promote another version "
                "or roll back before archiving it"
            )
        writes = [_check(PRODUCTION, production)]
        staging = self.store.get_alias(name, STAGING)
        if staging is not None and staging.version == number:
            writes.append(AliasWrite(STAGING, staging.revision, None))
        else:
            writes.append(_check(STAGING, staging))
        self._apply(
            name,
            writes,
            {number: Stage.ARCHIVED},
            HistoryAction.ARCHIVE,
            None,
            None,
            number,
            reason,
            actor,
        )
        return self.store.get_version(name, number)

    def _apply(
        self,
        name: str,
        writes: list[AliasWrite],
        stages: dict[int, Stage],
        action: HistoryAction,
        alias: str | None,
        current: AliasState | None,
        number: int,
        reason: str | None,
        actor: str | None,
    ) -> None:
        change = AliasChange(
            name=name,
            action=action,
            alias=alias,
            from_version=None if current is None else current.version,
            to_version=number,
            actor=self._actor_for(actor),
            timestamp=now_ms(),
            reason=reason,
            change_id=uuid.uuid4().hex,
        )
        self.store.apply_change(name, alias_writes=writes, stage_updates=stages, change=change)

    # -- traffic policy ----------------------------------------------------------------------

    def get_traffic(self, name: str) -> TrafficPolicy:
        """The model's traffic policy; production 100 % (revision 0) when none was set.

        Raises:
            NotFound: no such model.
        """
        return self.store.get_traffic(name) or default_traffic(name)

    def set_traffic(
        self,
        name: str,
        weights: Mapping[str, int],
        shadow: Sequence[str] | None = None,
        sticky: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> TrafficPolicy:
        """Split the model's traffic between aliases, and name aliases that shadow it.

        ``weights`` maps aliases to integer percentages (0-100, summing to 100, one at least
        above 0); ``shadow`` aliases score the same requests without answering them and may not
        also be weighted; ``sticky`` names the request field whose value keeps a caller on one
        variant (``None``: each request is assigned at random). Every alias named must point
        at a version. The change is optimistic: it is applied only if neither the policy nor
        any alias it names changed since they were read, and it is recorded in the history
        (and the event outbox) with ``actor`` and ``reason``.

        Raises:
            InvalidInput: a rule above is broken (nothing written).
            NotFound: no such model.
            Conflict: a concurrent change won (nothing written).
        """
        checked = _weights(weights)
        shadows = _shadow(shadow, checked)
        if sticky is not None and (
            not isinstance(sticky, str) or not STICKY_FIELD.fullmatch(sticky)
        ):
            raise InvalidInput(
                f"sticky must be a field name (a letter or _, then up to 63 of A-Z a-z 0-9 _), "
                f"not {sticky!r}"
            )
        reason = _text(reason, "reason", MAX_REASON)
        current = self.store.get_traffic(name)
        checks: list[AliasWrite] = []
        for alias in [*checked, *shadows]:
            state = self.store.get_alias(name, alias)
            if state is None:
                raise InvalidInput(
                    f"model {name!r} has no {alias!r} alias; promote a version to it first"
                )
            checks.append(_check(alias, state))
        return self._write_traffic(name, current, checked, shadows, sticky, checks, reason, actor)

    def clear_traffic(
        self, name: str, reason: str | None = None, actor: str | None = None
    ) -> TrafficPolicy:
        """Send all traffic to production again, with nothing shadowed (recorded like a set).

        Raises:
            NotFound: no such model.
            Conflict: a concurrent change won (nothing written).
        """
        reason = _text(reason, "reason", MAX_REASON)
        current = self.store.get_traffic(name)
        if current is None or current.is_default:
            return current or default_traffic(name)
        return self._write_traffic(name, current, {PRODUCTION: 100}, [], None, [], reason, actor)

    def _write_traffic(
        self,
        name: str,
        current: TrafficPolicy | None,
        weights: dict[str, int],
        shadow: list[str],
        sticky: str | None,
        checks: list[AliasWrite],
        reason: str | None,
        actor: str | None,
    ) -> TrafficPolicy:
        who = self._actor_for(actor)
        now = now_ms()
        expected = 0 if current is None else current.revision
        policy = TrafficPolicy(
            name=name,
            policy_id=uuid.uuid4().hex,
            weights=weights,
            shadow=shadow,
            sticky=sticky,
            revision=expected + 1,
            updated_at=now,
            updated_by=who,
            reason=reason,
        )
        change = AliasChange(
            name=name,
            action=HistoryAction.TRAFFIC,
            actor=who,
            timestamp=now,
            reason=reason,
            change_id=uuid.uuid4().hex,
        )
        self.store.set_traffic(
            name, policy=policy, expected_revision=expected, alias_checks=checks, change=change
        )
        return policy

    # -- descriptions and tags ---------------------------------------------------------------

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, object] | None = None
    ) -> RegisteredModel:
        """Set a model's description and merge tags into its tags."""
        return self.store.update_model(
            name,
            description=_text(description, "description", MAX_DESCRIPTION),
            tags=validate_tags(tags or {}),
        )

    def update_version(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> ModelVersion:
        """Set a version's description and merge tags into its tags."""
        return self.store.update_version(
            name,
            _version_number(version),
            description=_text(description, "description", MAX_DESCRIPTION),
            tags=validate_tags(tags or {}),
        )

    # -- artifacts ---------------------------------------------------------------------------

    def download(self, version: ModelVersion, destination: Path) -> Path:
        """Copy a version's artifact to ``destination``, verified against its SHA-256.

        Raises:
            IntegrityError: the stored bytes do not match the registry's SHA-256.
            NotFound: the artifact is gone.
        """
        return self.artifacts.download(
            version.artifact_uri, destination, version.sha256, version.size
        )

    def load_model(
        self,
        name: str,
        *,
        version: int | None = None,
        alias: str = PRODUCTION,
        allow_pickle: bool = False,
        cache_dir: Path | None = None,
    ) -> tuple[ModelVersion, Any]:
        """Download, verify and load a version (``version``, else the one ``alias`` points at).

        Raises:
            NotFound: no such model, version or alias target.
            IntegrityError: the artifact's bytes do not match the registry's SHA-256.
            InvalidInput: a pickle flavor without ``allow_pickle``.
        """
        chosen = (
            self.get_version(name, version)
            if version is not None
            else self.get_version_by_alias(name, alias)
        )
        if chosen.flavor in PICKLE_FLAVORS and not allow_pickle:
            raise InvalidInput(
                f"{name} v{chosen.version} is a {chosen.flavor.value} pickle; loading it needs "
                "ALLOW_PICKLE_MODELS=true"
            )
        with tempfile.TemporaryDirectory(prefix="tracking-load-", dir=cache_dir) as folder:
            path = self.download(chosen, Path(folder) / Path(chosen.artifact_uri).name)
            return chosen, load_model(path, chosen.flavor, allow_pickle=allow_pickle)


def _move(alias: str, current: AliasState | None, number: int) -> AliasWrite:
    previous = [] if current is None else [*current.previous, current.version][-ROLLBACK_DEPTH:]
    state = AliasState(alias=alias, version=number, previous=previous, revision=uuid.uuid4().hex)
    return AliasWrite(alias, None if current is None else current.revision, state)


def _check(alias: str, current: AliasState | None) -> AliasWrite:
    return AliasWrite(alias, None if current is None else current.revision, check_only=True)


def default_traffic(name: str) -> TrafficPolicy:
    """The policy of a model that has none: everything to production."""
    return TrafficPolicy(name=name, policy_id="default", weights={PRODUCTION: 100})


def _traffic_alias(alias: object) -> str:
    return validate_name(alias, "traffic alias").lower()


def _weights(weights: object) -> dict[str, int]:
    if not isinstance(weights, Mapping) or not weights:
        raise InvalidInput("weights must map at least one alias to a percentage")
    checked: dict[str, int] = {}
    for alias, weight in weights.items():
        key = _traffic_alias(alias)
        if key in checked:
            raise InvalidInput(f"alias {key!r} is weighted twice")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise InvalidInput(
                f"the weight of {key!r} must be an integer from 0 to 100, not {weight!r}"
            )
        checked[key] = weight
    total = sum(checked.values())
    if total != 100:
        raise InvalidInput(f"weights must sum to 100; these sum to {total}")
    if len(checked) > MAX_TRAFFIC_ALIASES:
        raise InvalidInput(f"a policy may weight at most {MAX_TRAFFIC_ALIASES} aliases")
    return checked


def _shadow(shadow: object, weights: Mapping[str, int]) -> list[str]:
    if shadow is None:
        return []
    if isinstance(shadow, str) or not isinstance(shadow, Sequence):
        raise InvalidInput("shadow must be a list of aliases")
    names: list[str] = []
    for alias in shadow:
        key = _traffic_alias(alias)
        if key in weights:
            raise InvalidInput(f"alias {key!r} cannot be both weighted and shadow")
        if key in names:
            raise InvalidInput(f"alias {key!r} is listed twice in shadow")
        names.append(key)
    if len(names) + len(weights) > MAX_TRAFFIC_ALIASES:
        raise InvalidInput(f"a policy may name at most {MAX_TRAFFIC_ALIASES} aliases in all")
    return names
