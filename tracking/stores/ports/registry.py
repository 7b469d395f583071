"""The ``RegistryStore`` port: models, versions, aliases and their audit history.

The registry's rules (which stage a version gets, what rollback means) live in
``tracking.registry``; a store only applies one prepared change atomically, under the conditions
it is given. Every backend runs the same contract tests (``tests/contract/test_registry*.py``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from tracking.entities import (
    AliasChange,
    AliasState,
    ModelVersion,
    Page,
    RegisteredModel,
    Stage,
    TrafficPolicy,
    iter_pages,
)
from tracking.errors import InvalidInput
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

#: What the tags of one model or one version may hold in all (UTF-8 keys plus values), on every
#: backend: tags merge into one record, which on DynamoDB must stay under its 400 KB item limit
#: with room for the description, metadata and signature.
MAX_TAG_BYTES = 128 * 1024


def check_tags(tags: Mapping[str, str], what: str) -> None:
    """Refuse a model's or version's (merged) tags above ``MAX_TAG_BYTES``.

    Raises:
        InvalidInput: the tags are too large; the message names the limit.
    """
    total = sum(
        len(key.encode(errors="surrogatepass")) + len(value.encode(errors="surrogatepass"))
        for key, value in tags.items()
    )
    if total > MAX_TAG_BYTES:
        raise InvalidInput(
            f"the tags of {what} would hold {total} bytes; the limit is {MAX_TAG_BYTES} bytes "
            "(use fewer or shorter tags)"
        )


@dataclass(frozen=True)
class AliasWrite:
    """Set (``state``) or delete (``state is None``) one alias, if its revision is unchanged.

    ``expected_revision`` is the revision read before (``None``: the alias must not exist).
    With ``check_only`` nothing is written: the change only requires the alias to be unchanged.
    """

    alias: str
    expected_revision: str | None
    state: AliasState | None = None
    check_only: bool = False


class RegistryStore(abc.ABC):
    """Model registry storage. Implemented by the same adapters as ``MetadataStore``."""

    @abc.abstractmethod
    def create_model_version(
        self, version: ModelVersion, *, expected_latest: int, change: AliasChange
    ) -> None:
        """Add ``version`` (whose number is ``expected_latest + 1``) in one atomic step.

        Creates the model when ``expected_latest`` is 0, sets its latest version, writes the
        version, appends ``change`` to the history and its event to the outbox.

        Raises:
            Conflict: another registration took this number first (the caller retries).
        """

    @abc.abstractmethod
    def get_model(self, name: str) -> RegisteredModel:
        """Return a model with its current aliases.

        Raises:
            NotFound: no such model.
        """

    @abc.abstractmethod
    def list_models(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        """Models ordered by name, each with its current aliases.

        Raises:
            InvalidInput: bad page token.
        """

    @abc.abstractmethod
    def get_version(self, name: str, version: int) -> ModelVersion:
        """Raises:
        NotFound: no such model or version.
        """

    @abc.abstractmethod
    def list_versions(
        self, name: str, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[ModelVersion]:
        """Versions of a model, newest first.

        Raises:
            NotFound: no such model.
            InvalidInput: bad page token.
        """

    @abc.abstractmethod
    def get_alias(self, name: str, alias: str) -> AliasState | None:
        """The alias's state, or ``None`` when it points nowhere.

        Raises:
            NotFound: no such model.
        """

    @abc.abstractmethod
    def apply_change(
        self,
        name: str,
        *,
        alias_writes: Sequence[AliasWrite],
        stage_updates: Mapping[int, Stage],
        change: AliasChange,
    ) -> None:
        """Apply alias moves, stage updates, one history entry and its event, all or nothing.

        Raises:
            Conflict: an alias's revision is not the expected one (a concurrent change won).
            NotFound: the model or a version in ``stage_updates`` does not exist.
        """

    @abc.abstractmethod
    def get_traffic(self, name: str) -> TrafficPolicy | None:
        """The model's stored traffic policy, or ``None`` when none was ever set.

        Raises:
            NotFound: no such model.
        """

    @abc.abstractmethod
    def set_traffic(
        self,
        name: str,
        *,
        policy: TrafficPolicy,
        expected_revision: int,
        alias_checks: Sequence[AliasWrite],
        change: AliasChange,
    ) -> None:
        """Store ``policy``, append ``change`` and its event to history and outbox, atomically.

        Written only if the stored policy's revision is ``expected_revision`` (0: none stored)
        and every alias in ``alias_checks`` (``check_only`` writes) still has the revision read,
        so a policy never names an alias that moved or vanished meanwhile.

        Raises:
            Conflict: a concurrent change won (the policy or an alias changed). Nothing written.
            NotFound: no such model.
        """

    @abc.abstractmethod
    def list_history(
        self, name: str, max_results: int = MAX_PAGE_SIZE, page_token: str | None = None
    ) -> Page[AliasChange]:
        """The model's audit history, oldest first.

        Raises:
            NotFound: no such model.
        """

    @abc.abstractmethod
    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        """Set the description (when given) and merge ``tags`` into the model's tags.

        Raises:
            NotFound: no such model.
            InvalidInput: the merged tags break ``MAX_TAG_BYTES`` (nothing written).
        """

    @abc.abstractmethod
    def update_version(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Set the description (when given) and merge ``tags`` into the version's tags.

        Raises:
            NotFound: no such model or version.
            InvalidInput: the merged tags break ``MAX_TAG_BYTES`` (nothing written).
        """

    # -- conveniences ------------------------------------------------------------------------

    def iter_versions(self, name: str) -> Iterator[ModelVersion]:
        return iter_pages(lambda token: self.list_versions(name, MAX_PAGE_SIZE, token))

    def iter_history(self, name: str) -> Iterator[AliasChange]:
        return iter_pages(lambda token: self.list_history(name, MAX_PAGE_SIZE, token))
