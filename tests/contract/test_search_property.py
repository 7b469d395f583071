"""Random runs, filters and orders: every backend's pages equal the pure-Python reference.

SQLite compiles the filter and the order to SQL; DynamoDB evaluates them on run summaries (and
for a run whose summary overflowed, on its partition). Each example writes its runs into a
fresh store of the backend (a new file, or new tables), searches with random page sizes, and
compares the concatenated pages with ``reference_search`` over the runs read back.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.conftest import Backend
from tests.search_strategies import filters, orders, reference_search, run_specs, write_runs
from tracking import ExperimentLogger
from tracking.backends import build_metadata_store
from tracking.stores.ports.metadata import MetadataStore

_fresh = itertools.count()
#: Examples per backend: SQLite is cheap; every DynamoDB example creates two tables.
EXAMPLES = {"sqlite": 60, "moto": 25, "moto_server": 12}


def _fresh_store(backend: Backend, tmp_path: Path) -> MetadataStore:
    number = next(_fresh)
    if backend.name == "sqlite":
        store = build_metadata_store(f"sqlite:///{tmp_path / f'search{number}.db'}")
    else:
        # Unique across xdist workers too: the moto server is shared by the session.
        store = build_metadata_store(f"dynamodb://prop{number}-{uuid.uuid4().hex[:8]}")
    store.initialize()
    return store


def test_pages_equal_the_reference(backend: Backend, tmp_path: Path) -> None:
    @given(data=st.data(), page_size=st.integers(1, 5))
    @settings(
        max_examples=EXAMPLES[backend.name],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    def check(data: st.DataObject, page_size: int) -> None:
        specs = data.draw(run_specs(max_runs=8), label="runs")
        filter_text = data.draw(filters(specs), label="filter")
        order_by = data.draw(orders(), label="order_by")
        store = _fresh_store(backend, tmp_path)
        try:
            experiment = store.create_experiment("prop")
            write_runs(store, experiment, specs)
            stored = list(store.iter_runs("prop"))
            expected = reference_search(stored, filter_text, order_by)
            logger = ExperimentLogger(metadata_store=store, artifact_store=backend.artifacts)
            found: list[str] = []
            token = None
            while True:
                page = logger.search_runs(
                    "prop", filter=filter_text, order_by=order_by, max_results=page_size,
                    page_token=token,
                )  # fmt: skip
                found.extend(run.run_id for run in page.items)
                if page.next_token is None:
                    break
                assert len(page.items) == page_size
                token = page.next_token
            assert found == expected
        finally:
            store.close()

    check()
