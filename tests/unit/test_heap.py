"""``functions.api.heap``: what a server freezes stays out of collections, and a swap lets the
collector reclaim what it dropped. Run in a fresh interpreter: freezing the test process would
freeze every test's garbage."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import gc, weakref
    from functions.api import heap

    heap.after_swap()  # nothing frozen: nothing to do, and nothing gets frozen
    assert not heap.frozen() and gc.get_freeze_count() == 0

    class Schema:  # a class, as a version's pydantic schemas are: always a reference cycle
        pass

    holder = {"old": Schema}
    alive = weakref.ref(Schema)
    del Schema
    heap.freeze()
    assert heap.frozen()
    del holder["old"]
    gc.collect()
    assert alive() is not None, "a frozen cycle is never collected"
    heap.after_swap()
    assert alive() is None, "after a swap the dropped version is collected"
    assert heap.frozen(), "and what is left is frozen again"
    print("ok")
    """
)


def test_frozen_cycles_survive_collections_until_a_swap() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
