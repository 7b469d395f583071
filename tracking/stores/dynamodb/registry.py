"""The model registry on DynamoDB: models, versions, aliases and history."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import size
from pynamodb.expressions.update import Action

from tracking import signatures
from tracking.entities import (
    AliasChange,
    AliasState,
    Flavor,
    HistoryAction,
    ModelVersion,
    Page,
    RegisteredModel,
    Stage,
    TrafficPolicy,
)
from tracking.errors import Conflict, InvalidInput, NotFound, TrackingError
from tracking.events.outbox import new_record
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.dynamodb.base import LIST_RUNS_CONCURRENCY, UPDATE_ATTEMPTS, DynamoDBBase
from tracking.stores.dynamodb.errors import (
    _calling,
    conditional_write,
)
from tracking.stores.dynamodb.keys import (
    _ALIAS,
    _HISTORY,
    _MODEL_SK,
    _MODELS_GSI_PK,
    _TRAFFIC_SK,
    _VERSION,
    _history_sk,
    _model_pk,
    _version_sk,
)
from tracking.stores.dynamodb.outbox import outbox_item
from tracking.stores.dynamodb.queries import query_page
from tracking.stores.dynamodb.writes import _check_item_size, _Writes
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tracking.stores.ports.registry import AliasWrite, RegistryStore, check_tags


class DynamoDBRegistry(DynamoDBBase, RegistryStore):
    """The registry in the tracking table: one partition per model."""

    # -- model registry ------------------------------------------------------------------------

    def _next_history_clock(self) -> int:
        """Nanoseconds since the epoch, strictly increasing within this store.

        History is listed by sort key; two entries written by one process in the same
        millisecond must still come back in the order they were written. Callers hold the
        registry lock.
        """
        self._history_last_ns = max(time.time_ns(), self._history_last_ns + 1)
        return self._history_last_ns

    def _history_item(self, change: AliasChange) -> Any:
        model = self._models.TrackingItem
        return model(
            _model_pk(change.name),
            _history_sk(change.timestamp, self._next_history_clock(), change.change_id),
            name=change.name,
            action=HistoryAction(change.action).value,
            alias=change.alias,
            from_version=change.from_version,
            to_version=change.to_version,
            actor=change.actor,
            timestamp=change.timestamp,
            reason=change.reason,
            change_id=change.change_id,
        )

    def _model_exists(self, name: str) -> bool:
        model = self._models.TrackingItem
        with _calling("get model"):
            try:
                model.get(
                    _model_pk(name), _MODEL_SK, consistent_read=True, attributes_to_get=["pk"]
                )
            except DoesNotExist:
                return False
        return True

    def _require_model(self, name: str) -> None:
        if not self._model_exists(name):
            raise NotFound(f"model {name!r} not found")

    def _missing_version(self, name: str, version: int) -> NotFound:
        self._require_model(name)
        return NotFound(f"model {name!r} has no version {version}")

    def _aliases_of(self, name: str) -> dict[str, int]:
        model = self._models.TrackingItem
        with _calling("get model"):
            items = model.query(_model_pk(name), model.sk.startswith(_ALIAS), consistent_read=True)
            return {item.alias: int(item.version) for item in items}

    def create_model_version(
        self, version: ModelVersion, *, expected_latest: int, change: AliasChange
    ) -> None:
        """Write the model's new latest number, the version and its history entry in one
        TransactWriteItems.

        The model item is created (if absent) when ``expected_latest`` is 0, else updated only
        if its ``latest_version`` is still ``expected_latest``.

        Raises:
            Conflict: another registration took this number first (nothing written).
        """
        check_tags(version.tags, f"model {version.name!r} version {version.version}")
        if version.version != expected_latest + 1:
            raise Conflict(
                f"model {version.name!r} version {version.version} was taken concurrently"
            )
        model = self._models.TrackingItem
        pk = _model_pk(version.name)
        writes = _Writes()
        if expected_latest == 0:
            head = model(
                pk,
                _MODEL_SK,
                gsi1pk=_MODELS_GSI_PK,
                gsi1sk=version.name,
                name=version.name,
                created_at=version.created_at,
                updated_at=version.created_at,
                latest_version=version.version,
                tags={},
            )
            writes.put("latest", head, model.pk.does_not_exist())
        else:
            writes.update(
                "latest",
                model(pk, _MODEL_SK),
                [
                    model.latest_version.set(version.version),
                    model.updated_at.set(version.created_at),
                ],
                model.latest_version == expected_latest,
            )
        version_item = _version_item(model, version)
        _check_item_size(version_item.serialize(), f"model {version.name!r} version")
        writes.put("version", version_item, model.pk.does_not_exist())
        writes.put("history", self._history_item(change), model.pk.does_not_exist())
        writes.put("outbox", outbox_item(model, new_record(change)), model.pk.does_not_exist())
        failed = writes.failed(self._transact("register model version", writes.fill))
        if failed and "history" not in failed:
            # Whichever condition failed, a concurrent registration moved the model on. (A
            # failed history condition means this transaction committed on an earlier attempt
            # whose answer was lost: its item is keyed by this change's id.)
            raise Conflict(
                f"model {version.name!r} version {version.version} was taken concurrently"
            )

    def get_model(self, name: str) -> RegisteredModel:
        """Return the model item and its aliases: one GetItem and one Query.

        Raises:
            NotFound: no such model.
        """
        with _calling("get model"):
            try:
                item = self._models.TrackingItem.get(
                    _model_pk(name), _MODEL_SK, consistent_read=True
                )
            except DoesNotExist:
                raise NotFound(f"model {name!r} not found") from None
        return _model_from(item, self._aliases_of(name))

    def list_models(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        """Return models ordered by name: one Query on ``gsi1``, then one per model for aliases.

        Raises:
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        heads = self._named_page(
            "list models", _MODELS_GSI_PK, _model_pk, _MODEL_SK, "model", limit, page_token
        )
        page = heads[:limit]
        names = [head.name for head in page]
        if len(names) > 1:
            with ThreadPoolExecutor(max_workers=LIST_RUNS_CONCURRENCY) as pool:
                aliases = list(pool.map(self._aliases_of, names))
        else:
            aliases = [self._aliases_of(name) for name in names]
        models = [_model_from(head, found) for head, found in zip(page, aliases, strict=True)]
        token = encode_token({"model": names[-1]}) if len(heads) > limit else None
        return Page(items=models, next_token=token)

    def get_version(self, name: str, version: int) -> ModelVersion:
        """Return one version, from one GetItem.

        Raises:
            NotFound: no such model or version.
        """
        with _calling("get model version"):
            try:
                item = self._models.TrackingItem.get(
                    _model_pk(name), _version_sk(version), consistent_read=True
                )
            except DoesNotExist:
                item = None
        if item is None:
            raise self._missing_version(name, version)
        return _version_from(item)

    def list_versions(
        self, name: str, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[ModelVersion]:
        """Return versions newest first, from one backward Query of the model's partition.

        Raises:
            NotFound: no such model.
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        pk = _model_pk(name)
        start_key: dict[str, dict[str, Any]] | None = None
        if page_token is not None:
            before = decode_token(page_token, ("before",))["before"]
            if isinstance(before, bool) or not isinstance(before, int) or not 1 <= before < 10**10:
                raise InvalidInput("invalid page token")
            start_key = {"pk": {"S": pk}, "sk": {"S": _version_sk(before)}}
        model = self._models.TrackingItem
        items = query_page(
            model,
            pk,
            model.sk.startswith(_VERSION),
            action="list model versions",
            limit=limit,
            start_key=start_key,
            consistent_read=True,
            scan_index_forward=False,
        )
        if not items:
            # A model always has a version, so only an empty answer needs the existence check.
            self._require_model(name)
        versions = [_version_from(item) for item in items[:limit]]
        token = encode_token({"before": versions[-1].version}) if len(items) > limit else None
        return Page(items=versions, next_token=token)

    def get_alias(self, name: str, alias: str) -> AliasState | None:
        """Return the alias's state from one strongly consistent GetItem.

        Raises:
            NotFound: no such model.
        """
        with _calling("get alias"):
            try:
                item = self._models.TrackingItem.get(
                    _model_pk(name), _ALIAS + alias, consistent_read=True
                )
            except DoesNotExist:
                item = None
        if item is None:
            # An alias item implies its model; only a missing alias needs the model checked.
            self._require_model(name)
            return None
        return AliasState(
            alias=item.alias,
            version=int(item.version),
            previous=[int(number) for number in item.previous or []],
            revision=item.revision,
        )

    def apply_change(
        self,
        name: str,
        *,
        alias_writes: Sequence[AliasWrite],
        stage_updates: Mapping[int, Stage],
        change: AliasChange,
    ) -> None:
        """Apply alias writes, stage updates, ``updated_at`` and the history entry in one
        TransactWriteItems, each alias guarded by its expected revision.

        Raises:
            NotFound: the model or a version in ``stage_updates`` does not exist.
            Conflict: an alias's revision is not the expected one, or another transaction
                touched the same items at the same time. Nothing is written.
        """
        model = self._models.TrackingItem
        pk = _model_pk(name)
        writes = _Writes()
        writes.update(
            "model",
            model(pk, _MODEL_SK),
            [model.updated_at.set(change.timestamp)],
            model.pk.exists(),
        )
        _alias_writes(writes, model, pk, alias_writes)
        for number, stage in stage_updates.items():
            writes.update(
                _version_sk(number),
                model(pk, _version_sk(number)),
                [model.stage.set(Stage(stage).value)],
                model.pk.exists(),
            )
        writes.put("history", self._history_item(change), model.pk.does_not_exist())
        writes.put("outbox", outbox_item(model, new_record(change)), model.pk.does_not_exist())
        failed = writes.failed(self._transact("apply model change", writes.fill))
        if not failed or "history" in failed:
            # The history item is keyed by this change's id: if it exists, this very
            # transaction committed on an earlier attempt whose answer was lost.
            return
        # Report what the SQLite store would have found first: the model, then the aliases,
        # then the versions.
        if "model" in failed:
            raise NotFound(f"model {name!r} not found")
        for label in failed:
            if label.startswith(_ALIAS):
                raise Conflict(
                    f"alias {label[len(_ALIAS) :]!r} of model {name!r} was moved concurrently; "
                    "read it again and retry"
                )
        for label in failed:
            if label.startswith(_VERSION):
                raise NotFound(f"model {name!r} has no version {int(label[len(_VERSION) :])}")
        raise Conflict(f"change {change.change_id!r} of model {name!r} was already recorded")

    def get_traffic(self, name: str) -> TrafficPolicy | None:
        """The policy item, from one strongly consistent GetItem.

        Raises:
            NotFound: no such model.
        """
        with _calling("get traffic policy"):
            try:
                item = self._models.TrackingItem.get(
                    _model_pk(name), _TRAFFIC_SK, consistent_read=True
                )
            except DoesNotExist:
                item = None
        if item is None:
            self._require_model(name)
            return None
        return TrafficPolicy.model_validate_json(item.policy_json)

    def set_traffic(
        self,
        name: str,
        *,
        policy: TrafficPolicy,
        expected_revision: int,
        alias_checks: Sequence[AliasWrite],
        change: AliasChange,
    ) -> None:
        """Put the policy, check the aliases, add history and outbox items: one
        TransactWriteItems, the policy guarded by its expected revision.

        Raises:
            NotFound: no such model.
            Conflict: the policy or an alias changed meanwhile. Nothing is written.
        """
        model = self._models.TrackingItem
        pk = _model_pk(name)
        writes = _Writes()
        writes.update(
            "model",
            model(pk, _MODEL_SK),
            [model.updated_at.set(change.timestamp)],
            model.pk.exists(),
        )
        unchanged = (
            model.pk.does_not_exist()
            if expected_revision == 0
            else model.traffic_revision == expected_revision
        )
        item = model(
            pk,
            _TRAFFIC_SK,
            name=name,
            policy_json=policy.model_dump_json(),
            traffic_revision=policy.revision,
        )
        writes.put("traffic", item, unchanged)
        _alias_writes(writes, model, pk, alias_checks)
        writes.put("history", self._history_item(change), model.pk.does_not_exist())
        record = new_record(change, policy)
        writes.put("outbox", outbox_item(model, record), model.pk.does_not_exist())
        failed = writes.failed(self._transact("set traffic policy", writes.fill))
        if not failed or "history" in failed:
            return  # committed (maybe on an earlier attempt whose answer was lost)
        if "model" in failed:
            raise NotFound(f"model {name!r} not found")
        if "traffic" in failed:
            raise Conflict(
                f"the traffic policy of model {name!r} was changed concurrently; "
                "read it again and retry"
            )
        for label in failed:
            if label.startswith(_ALIAS):
                raise Conflict(
                    f"alias {label[len(_ALIAS) :]!r} of model {name!r} was moved concurrently; "
                    "read it again and retry"
                )
        raise Conflict(f"change {change.change_id!r} of model {name!r} was already recorded")

    def list_history(
        self, name: str, max_results: int = MAX_PAGE_SIZE, page_token: str | None = None
    ) -> Page[AliasChange]:
        """Return the audit history oldest first, from one Query of the model's partition.

        Raises:
            NotFound: no such model.
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        pk = _model_pk(name)
        start_key: dict[str, dict[str, Any]] | None = None
        if page_token is not None:
            after = decode_token(page_token, ("after",))["after"]
            if not isinstance(after, str) or not after.startswith(_HISTORY):
                raise InvalidInput("invalid page token")
            start_key = {"pk": {"S": pk}, "sk": {"S": after}}
        model = self._models.TrackingItem
        items = query_page(
            model,
            pk,
            model.sk.startswith(_HISTORY),
            action="list model history",
            limit=limit,
            start_key=start_key,
            consistent_read=True,
        )
        if not items:
            self._require_model(name)
        changes = [_change_from(item) for item in items[:limit]]
        token = encode_token({"after": items[limit - 1].sk}) if len(items) > limit else None
        return Page(items=changes, next_token=token)

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        """Set the description and merge ``tags`` key by key in one conditional UpdateItem.

        Merging in the update expression (``SET tags.#k = :v``) rather than read-modify-write
        means two concurrent tag updates never drop each other's keys. The item is read first
        so that its size with the merged tags can be checked (see ``_update_tagged``).

        Raises:
            NotFound: no such model.
            InvalidInput: the model item would grow past ``MAX_ITEM_BYTES``.
        """
        if _description_and_tags(self._models.TrackingItem, description, tags):
            self._update_tagged(
                _model_pk(name),
                _MODEL_SK,
                description,
                tags,
                what=f"model {name!r}",
                missing=lambda: NotFound(f"model {name!r} not found"),
            )
        return self.get_model(name)

    def update_version(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Set the description and merge ``tags`` key by key in one conditional UpdateItem.

        Raises:
            NotFound: no such model or version.
            InvalidInput: the version item would grow past ``MAX_ITEM_BYTES``.
        """
        if not _description_and_tags(self._models.TrackingItem, description, tags):
            return self.get_version(name, version)
        item = self._update_tagged(
            _model_pk(name),
            _version_sk(version),
            description,
            tags,
            what=f"model {name!r} version {version}",
            missing=lambda: self._missing_version(name, version),
        )
        # UpdateItem answers with the new item (ALL_NEW), so no read follows.
        return _version_from(item)

    def _update_tagged(
        self,
        pk: str,
        sk: str,
        description: str | None,
        tags: Mapping[str, str] | None,
        *,
        what: str,
        missing: Callable[[], TrackingError],
    ) -> Any:
        """Merge tags into (and set the description of) a model or version item, bounded.

        Tags merge into a map on the item, so without a bound repeated updates would grow it
        past DynamoDB's 400 KB item limit (DynamoDB then refuses every later write of the item).
        The item is read, its size with the change computed by DynamoDB's rules, and the update
        made only if the tag map still has the size read: tags are never removed, so an
        unchanged count means an unchanged key set and the size computed holds. A concurrent
        tag update makes the condition fail, and the check runs again on the new item.

        Raises:
            InvalidInput: the item would be larger than ``MAX_ITEM_BYTES`` (nothing written).
            Conflict: other writers kept changing the tags.
            The error ``missing`` returns: no such item.
        """
        model = self._models.TrackingItem
        for _ in range(UPDATE_ATTEMPTS):
            with _calling("update model"):
                try:
                    current: Any = model.get(pk, sk, consistent_read=True)
                except DoesNotExist:
                    raise missing() from None
            stored_tags = dict(current.tags.as_dict()) if current.tags is not None else None
            merged = {**(stored_tags or {}), **(tags or {})}
            check_tags(merged, what)
            current.tags = merged
            if description is not None:
                current.description = description
            _check_item_size(current.serialize(), what)
            unchanged = (
                model.tags.does_not_exist()
                if stored_tags is None
                else size(model.tags) == len(stored_tags)  # type: ignore[no-untyped-call]
            )
            item = model(pk, sk)
            with conditional_write("update model") as changed:
                item.update(
                    actions=_description_and_tags(model, description, tags),
                    condition=model.pk.exists() & unchanged,
                )
            if changed.failed:
                continue  # deleted, or tags changed meanwhile: read again
            return item
        raise Conflict(f"the tags of {what} are being changed concurrently; retry")


def _alias_writes(writes: _Writes, model: Any, pk: str, alias_writes: Sequence[AliasWrite]) -> None:
    """Add each alias write (or check), guarded by the alias's expected revision."""
    for write in alias_writes:
        label = f"{_ALIAS}{write.alias}"
        unchanged = (
            model.pk.does_not_exist()
            if write.expected_revision is None
            else model.revision == write.expected_revision
        )
        if write.check_only:
            writes.check(label, model, pk, _ALIAS + write.alias, unchanged)
        elif write.state is None:
            writes.delete(label, model(pk, _ALIAS + write.alias), unchanged)
        else:
            item = model(
                pk,
                _ALIAS + write.alias,
                alias=write.alias,
                version=write.state.version,
                previous=list(write.state.previous),
                revision=write.state.revision,
            )
            writes.put(label, item, unchanged)


def _description_and_tags(
    model: Any, description: str | None, tags: Mapping[str, str] | None
) -> list[Action]:
    actions: list[Action] = [model.tags[key].set(value) for key, value in (tags or {}).items()]
    if description is not None:
        actions.append(model.description.set(description))
    return actions


def _version_item(model: Any, version: ModelVersion) -> Any:
    return model(
        _model_pk(version.name),
        _version_sk(version.version),
        name=version.name,
        version=version.version,
        run_id=version.run_id,
        experiment_name=version.experiment_name,
        artifact_name=version.artifact_name,
        artifact_uri=version.artifact_uri,
        sha256=version.sha256,
        size=version.size,
        flavor=Flavor(version.flavor).value,
        signature_json=signatures.encode(version.signature, version.output_signature),
        description=version.description,
        # Always present (maybe empty): tag updates set keys inside it with a document path.
        tags=dict(version.tags),
        metadata_json=json.dumps(version.metadata),
        stage=Stage(version.stage).value,
        created_at=version.created_at,
        actor=version.actor,
    )


def _version_from(item: Any) -> ModelVersion:
    inputs, outputs = signatures.decode(item.signature_json)
    return ModelVersion(
        name=item.name,
        version=int(item.version),
        run_id=item.run_id,
        experiment_name=item.experiment_name,
        artifact_name=item.artifact_name,
        artifact_uri=item.artifact_uri,
        sha256=item.sha256,
        size=int(item.size),
        flavor=Flavor(item.flavor),
        signature=inputs,
        output_signature=outputs,
        description=item.description,
        tags=dict(item.tags.as_dict()) if item.tags is not None else {},
        metadata=json.loads(item.metadata_json or "{}"),
        stage=Stage(item.stage),
        created_at=int(item.created_at),
        actor=item.actor,
    )


def _model_from(item: Any, aliases: Mapping[str, int]) -> RegisteredModel:
    return RegisteredModel(
        name=item.name,
        created_at=int(item.created_at),
        updated_at=int(item.updated_at),
        latest_version=int(item.latest_version),
        description=item.description,
        tags=dict(item.tags.as_dict()) if item.tags is not None else {},
        aliases=dict(aliases),
    )


def _change_from(item: Any) -> AliasChange:
    return AliasChange(
        name=item.name,
        action=HistoryAction(item.action),
        alias=item.alias,
        from_version=None if item.from_version is None else int(item.from_version),
        to_version=None if item.to_version is None else int(item.to_version),
        actor=item.actor,
        timestamp=int(item.timestamp),
        reason=item.reason,
        change_id=item.change_id,
    )
