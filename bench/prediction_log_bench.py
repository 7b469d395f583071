"""The cost of ``PredictionLog.record`` on the request path, against same-run baselines.

Per call, one record (a single-row prediction), medians of ``--repeats`` runs of ``--calls`` calls:

- ``append``: ``list.append`` of the same dict (the floor any in-memory buffer pays);
- ``json.dumps``: serialising the record once (the least a synchronous logger would do);
- ``predict``: one single-row churn prediction (``ChurnPredictor.predict_records``) with a small
  XGBoost model trained here, i.e. what the log is added to;
- ``record``: ``PredictionLog.record`` with the writer thread running against a local folder;
- ``record 10%``: the same at ``PREDICTION_LOG_SAMPLE_RATE=0.1``;
- ``record full``: a store that never answers, so every record is dropped and counted.

    python bench/prediction_log_bench.py [--calls 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.api.prediction_log import PredictionLog  # noqa: E402
from tracking.artifacts.local import LocalArtifactStore  # noqa: E402


class _Stalled(LocalArtifactStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()

    def put_object(self, key: str, data: bytes) -> str:
        self.release.wait(60)
        return key


def _record() -> dict[str, Any]:
    return {"request_id": "0123456789abcdef00000001", "row": 0, "model": "churn",
            "variant": "production", "version": "v3", "score": 0.734512, "risk_level": "high",
            "sticky": "p_12345"}  # fmt: skip


def _per_call(fn: Callable[[], object], calls: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - started) / calls)
    return statistics.median(runs)


def _predictor() -> Callable[[], object]:
    import xgboost as xgb

    from models.churn.evaluation import RiskThresholds
    from models.churn.features import FEATURE_NAMES, ChurnFeatures
    from models.churn.predictor import ChurnPredictor

    rng = np.random.default_rng(0)
    x = rng.random((2000, len(FEATURE_NAMES)))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "nthread": 1},
                        xgb.DMatrix(x, label=rng.integers(0, 2, 2000),
                                    feature_names=list(FEATURE_NAMES)),
                        num_boost_round=100)  # fmt: skip
    version = type("V", (), {"label": "v1"})()
    predictor = ChurnPredictor(version, booster, RiskThresholds(medium=0.3, high=0.6))  # type: ignore[arg-type]
    predictor.booster.set_param({"nthread": 1})
    row = [ChurnFeatures(player_id="p_1", sessions_7d=3, playtime_7d=42.0, iap_count=0)]
    return lambda: predictor.predict_records(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    calls, repeats = args.calls, args.repeats
    template = _record()
    sink: list[dict[str, Any]] = []
    results: dict[str, float] = {}
    results["append"] = _per_call(lambda: sink.append(dict(template)), calls, repeats)
    sink.clear()
    results["json.dumps"] = _per_call(lambda: json.dumps(template), calls, repeats)
    results["predict"] = _per_call(_predictor(), max(calls // 10, 100), repeats)
    with tempfile.TemporaryDirectory() as folder:
        size = calls * repeats + 1
        live = PredictionLog(LocalArtifactStore(Path(folder)), buffer_size=size,
                             batch_size=1000, flush_seconds=1.0)  # fmt: skip
        results["record"] = _per_call(lambda: live.record([dict(template)]), calls, repeats)
        sampled = PredictionLog(LocalArtifactStore(Path(folder)), sample_rate=0.1,
                                buffer_size=size, batch_size=1000)  # fmt: skip
        results["record 10%"] = _per_call(lambda: sampled.record([dict(template)]), calls, repeats)
        stalled_store = _Stalled(Path(folder))
        full = PredictionLog(stalled_store, buffer_size=10, batch_size=10)
        results["record full"] = _per_call(lambda: full.record([dict(template)]), calls, repeats)
        assert live.flush(30.0)
        stalled_store.release.set()
        for recorder in (live, sampled, full):
            recorder.close(timeout=5.0)
    predict = results["predict"]
    sys.stdout.write(f"{'case':<12} {'us/call':>9} {'x append':>9} {'% of predict':>13}\n")
    for name, seconds in results.items():
        sys.stdout.write(f"{name:<12} {seconds * 1e6:>9.2f} {seconds / results['append']:>9.1f} "
                         f"{100 * seconds / predict:>12.1f}%\n")  # fmt: skip
    sys.stdout.write(f"written by the live recorder: {live.written}; dropped when full: "
                     f"{full.dropped['buffer_full']}\n")  # fmt: skip


if __name__ == "__main__":
    main()
