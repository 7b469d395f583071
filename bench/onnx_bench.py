"""Single-row and 100-row prediction latency: onnxruntime (the churn baseline) against XGBoost's
``inplace_predict`` (the churn model), measured in the same run.

    .venv/bin/python bench/onnx_bench.py [--rows 20000] [--repeats 7] [--calls 2000]

Both models are trained here on churn's data (XGBoost with churn's depth and rate, a fixed number
of rounds; the baseline exactly as ``models.churn_baseline.train`` fits it). Each figure is the
median over ``--repeats`` runs of ``--calls`` predictions, in microseconds per call; ratios are
against XGBoost with one thread (what serving uses). Also printed: the cost of the first ONNX load
(``import onnxruntime`` in a fresh interpreter, and building the session), which is what a lazily
loaded ONNX model adds to its first request.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.churn.data import generate, split
from models.churn.features import FEATURE_NAMES, FEATURE_TYPES
from models.churn_baseline.train import BaselineConfig, fit, to_onnx
from models.xgboost_dense import dense_booster
from tracking.flavors import load_onnx


def per_call_us(call: Callable[[], Any], calls: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def import_seconds(repeats: int) -> float:
    code = "import time; t = time.perf_counter(); import onnxruntime; print(time.perf_counter()-t)"
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True)  # fmt: skip
        runs.append(float(done.stdout))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2_000)
    args = parser.parse_args()

    train, validation, _ = split(generate(args.rows, 42), 42)
    matrix = xgb.DMatrix(train.features, label=train.churned, feature_names=list(FEATURE_NAMES),
                         feature_types=[FEATURE_TYPES[n] for n in FEATURE_NAMES])  # fmt: skip
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.1,
                         "tree_method": "hist", "seed": 42, "nthread": 2},
                        matrix, num_boost_round=args.rounds)  # fmt: skip
    booster.set_param({"nthread": 1})
    raw = to_onnx(fit(train, BaselineConfig(rows=args.rows)))

    started = time.perf_counter()
    sessions = {threads: load_onnx(raw, threads=threads) for threads in (1, 0)}
    session_ms = (time.perf_counter() - started) / 2 * 1e3

    direct = dense_booster(booster)
    print(f"XGBoost: {args.rounds} trees, depth 5; ONNX baseline: {len(raw)} bytes")
    print(f"{'case':<42}{'rows':>6}{'us/call':>12}{'x xgboost':>12}")
    for rows in (1, 100):
        batch = np.ascontiguousarray(validation.features[:rows], dtype=np.float32)
        calls = args.calls if rows == 1 else max(args.calls // 10, 50)
        baseline = per_call_us(lambda b=batch: booster.inplace_predict(b), calls, args.repeats)
        cases = {
            "xgboost inplace_predict, 1 thread": baseline,
            # What the API calls (models/xgboost_dense.py): the same C call, no wrapper work.
            "xgboost direct C call, 1 thread": per_call_us(
                lambda b=batch: direct.inplace_predict(b), calls, args.repeats
            ),
        }
        for threads, session in sessions.items():
            label = "onnxruntime run, 1 thread" if threads == 1 else "onnxruntime run, all cores"
            cases[label] = per_call_us(
                lambda b=batch, s=session: s.run(["probabilities"], {"features": b}),
                calls, args.repeats,
            )  # fmt: skip
        for label, value in cases.items():
            print(f"{label:<42}{rows:>6}{value:>12.1f}{value / baseline:>12.2f}")
    imported = import_seconds(args.repeats) * 1e3
    print(f"first ONNX load: import onnxruntime {imported:.0f} ms (median of {args.repeats} "
          f"fresh interpreters), session {session_ms:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
