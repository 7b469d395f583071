"""The collector and the heap a server builds at start.

By the time a server answers its first request it holds ~140,000 objects that live as long as it
does: modules, the app and its routes, pydantic schemas, the loaded models. CPython's full
collection walks all of them, and one ran every ~5,000 one-row predictions, each taking ~100 ms
with the GIL held: ~20 us per request on average, and a 100 ms stall for whichever requests
were in flight (the bench's rounds came out bimodal from it). ``gc.freeze()`` moves them to the
permanent generation, which no collection walks; what requests allocate is collected as before.

A frozen object is never collected as garbage: one that becomes unreachable in a reference
cycle stays in memory. The models a server swaps out are such objects (a version's pydantic
schemas are classes, which are always cycles), so each swap collects once with the start-up
heap unfrozen and freezes what is left (``after_swap``). Only servers freeze (functions/api/
serve.py): a test process that built many apps would freeze every one's garbage.
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """Collect the garbage of start-up, then freeze everything left (it lives as long as we do)."""
    gc.collect()
    gc.freeze()


def frozen() -> bool:
    return gc.get_freeze_count() > 0


def after_swap() -> None:
    """Let a swapped-out model be collected, and freeze the one that replaced it.

    One full collection (~100 ms on the server's heap), once per version change: what an
    unfrozen server pays every few thousand requests anyway. Nothing when nothing was frozen.
    """
    if frozen():
        gc.unfreeze()
        freeze()
