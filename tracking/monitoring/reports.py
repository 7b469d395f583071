"""The ``ab`` (traffic report) and ``drift`` reports, read from the stores.

Shared by ``tracking ab`` / ``tracking drift`` and ``GET /models/{name}/traffic/report`` /
``GET /models/{name}/drift``, so both say the same thing.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tracking.errors import InvalidInput, NotFound
from tracking.monitoring import compare, drift
from tracking.monitoring.feedback import join_labels, read_outcomes
from tracking.monitoring.prediction_log import read_predictions
from tracking.registry import ModelRegistry

#: Predictions a report reads at most (newest hours are not preferred: the cap is a safety net).
MAX_RECORDS = 200_000
#: The version tag that names the run artifact holding the training profile.
PROFILE_TAG = "profile_artifact"
PROFILE_ARTIFACT = "profile"
PRODUCTION = "production"
DEFAULT_VARIANT = "production"
MAX_PROFILE_BYTES = 16 * 1024 * 1024


def _variant(record: dict[str, Any]) -> str:
    return str(record.get("variant") or DEFAULT_VARIANT)


def _score(record: dict[str, Any]) -> float | None:
    value = record.get("score")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _window(since: timedelta, now: datetime) -> dict[str, str]:
    return {"since": (now - since).isoformat(), "until": now.isoformat()}


def _baseline(requests: Counter[str]) -> str | None:
    if PRODUCTION in requests:
        return PRODUCTION
    return requests.most_common(1)[0][0] if requests else None


def traffic_report(
    registry: ModelRegistry,
    name: str,
    *,
    since: timedelta,
    now: datetime,
    resamples: int = compare.DEFAULT_RESAMPLES,
    seed: int = compare.DEFAULT_SEED,
) -> dict[str, Any]:
    """Per variant: requests, versions, score distribution, and labelled quality with 95 % CIs.

    Each challenger is compared with the baseline (``production`` if it served, else the
    variant with the most requests): the difference of each metric with its bootstrap interval.

    Raises:
        NotFound: no such model. InvalidInput: a bad name. StoreUnavailable: a store failed.
    """
    registry.get_model(name)
    start = now - since
    records = list(read_predictions(registry.artifacts, name, start, now, max_records=MAX_RECORDS))
    labels = join_labels(records, read_outcomes(registry.artifacts, name, start, now))
    groups: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    versions: dict[str, Counter[str]] = defaultdict(Counter)
    requests: Counter[str] = Counter()
    for record, label in zip(records, labels, strict=True):
        variant = _variant(record)
        requests[variant] += 1
        versions[variant][str(record.get("version") or "-")] += 1
        score = _score(record)
        if score is not None:
            groups[variant].append((score, label))
    baseline = _baseline(requests)
    results: dict[str, compare.QualityResult] = {}
    variants = []
    for variant in sorted(requests, key=lambda v: (v != baseline, -requests[v], v)):
        pairs = groups.get(variant, [])
        labelled = [(s, y) for s, y in pairs if y is not None]
        result = compare.quality(
            [y for _, y in labelled], [s for s, _ in labelled], resamples=resamples, seed=seed
        )
        results[variant] = result
        variants.append({
            "variant": variant,
            "requests": requests[variant],
            "versions": dict(versions[variant]),
            "scores": compare.distribution([s for s, _ in pairs]),
            "labelled": len(labelled),
            "positive_rate": float(np.mean([y for _, y in labelled])) if labelled else None,
            "metrics": {k: v.as_dict() for k, v in result.metrics.items()},
        })  # fmt: skip
    differences = [
        {
            "variant": variant,
            "baseline": baseline,
            "metrics": {
                k: v.as_dict()
                for k, v in compare.difference(results[variant], results[baseline]).items()
            },
        }
        for variant in results
        if baseline is not None and variant != baseline
    ]
    return {
        "model": name,
        "window": _window(since, now),
        "requests": sum(requests.values()),
        "truncated": len(records) >= MAX_RECORDS,
        "baseline": baseline,
        "variants": variants,
        "differences": differences,
        "bootstrap": {
            "resamples": resamples,
            "seed": seed,
            "level": 0.95,
            "max_rows": compare.MAX_BOOTSTRAP_ROWS,
        },
    }


def load_profile(registry: ModelRegistry, name: str, version: int) -> dict[str, Any] | None:
    """The training profile of a version (``None`` when its run logged none).

    The version's ``profile_artifact`` tag names the run artifact (default ``profile``); its
    bytes are verified against their recorded SHA-256 like any artifact.

    Raises:
        NotFound: no such version. IntegrityError: the bytes fail their checksum.
    """
    found = registry.get_version(name, version)
    artifact = found.tags.get(PROFILE_TAG, PROFILE_ARTIFACT)
    record = registry.store.get_run(found.run_id).artifacts.get(artifact)
    if record is None:
        return None
    if record.size > MAX_PROFILE_BYTES:
        raise InvalidInput(f"the profile of {name} v{version} is larger than expected")
    with tempfile.TemporaryDirectory(prefix="tracking-profile-") as folder:
        path = registry.artifacts.download(
            record.uri, Path(folder) / "profile.json", record.sha256, record.size
        )
        loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _version_number(label: str) -> int | None:
    digits = label[1:] if label.startswith("v") else label
    return int(digits) if digits.isdigit() and len(digits) < 10 else None


def drift_report(
    registry: ModelRegistry, name: str, *, since: timedelta, now: datetime
) -> dict[str, Any]:
    """PSI and KS of the score (and of each feature, when logged) per variant and version.

    Raises:
        NotFound: no such model. StoreUnavailable: a store failed.
    """
    registry.get_model(name)
    records = list(
        read_predictions(registry.artifacts, name, now - since, now, max_records=MAX_RECORDS)
    )
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(_variant(record), str(record.get("version") or "-"))].append(record)
    with_features = any(isinstance(r.get("features"), dict) for r in records)
    entries = []
    for (variant, label), rows in sorted(groups.items()):
        entry: dict[str, Any] = {"variant": variant, "version": label, "rows": len(rows)}
        number = _version_number(label)
        try:
            profile = None if number is None else load_profile(registry, name, number)
        except NotFound:
            profile = None
        if profile is None:
            entry.update(score=None, features=None, note="no training profile for this version")
            entries.append(entry)
            continue
        logged = [r["features"] for r in rows if isinstance(r.get("features"), dict)]
        columns = (
            {feature: [f.get(feature) for f in logged] for feature in profile.get("features", {})}
            if logged
            else None
        )
        entry.update(drift.compare(profile, scores=[_score(r) for r in rows], features=columns))
        notes = []
        if columns is None:
            notes.append(
                "features are not logged (PREDICTION_LOG_FEATURES=false): score drift only"
            )
        if len(rows) < drift.MIN_ROWS:
            notes.append(f"fewer than {drift.MIN_ROWS} rows: PSI and KS are noisy")
        entry["note"] = "; ".join(notes) or None
        entry["drifted"] = sorted(
            [feature for feature, r in (entry.get("features") or {}).items() if r["drift"]]
            + (["score"] if (entry.get("score") or {}).get("drift") else [])
        )
        entries.append(entry)
    return {
        "model": name,
        "window": _window(since, now),
        "rows": len(records),
        "truncated": len(records) >= MAX_RECORDS,
        "features_logged": with_features,
        "psi_alert": drift.PSI_ALERT,
        "variants": entries,
    }
