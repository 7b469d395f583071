"""Model flavors: how an artifact is checked at registration and loaded for serving.

XGBoost models are accepted only in XGBoost's native JSON or UBJ formats, which hold data, not
code. Pickle-based flavors (``sklearn``, ``joblib``) can run arbitrary code when loaded, so they are
registered only with ``allow_pickle=True`` and loaded only when the loader is told to allow them
(the API's ``ALLOW_PICKLE_MODELS=true``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracking.entities import PICKLE_FLAVORS, FeatureSpec, Flavor
from tracking.errors import InvalidInput

#: First bytes of a pickle stream (protocol 2+ starts with PROTO 0x80).
_PICKLE_MAGIC = b"\x80"


def parse_flavor(flavor: object) -> Flavor:
    try:
        return Flavor(str(flavor))
    except ValueError:
        allowed = ", ".join(f.value for f in Flavor)
        raise InvalidInput(f"unknown flavor {flavor!r}; use one of {allowed}") from None


def check_xgboost_artifact(path: Path) -> list[FeatureSpec]:
    """Load an XGBoost model to prove it is native JSON or UBJ; return its input signature.

    Raises:
        InvalidInput: the file is not a native XGBoost model (a pickle, the deprecated binary
            format, or anything else).
    """
    raw = path.read_bytes()
    # Both JSON and UBJSON documents are objects that start with '{'; anything else (a pickle
    # starts with 0x80) is refused before XGBoost parses a byte of it.
    if raw.lstrip()[:1] != b"{":
        kind = "a pickle" if raw[:1] == _PICKLE_MAGIC else "not XGBoost JSON/UBJ"
        raise InvalidInput(
            f"artifact {path.name!r} is {kind}; register xgboost models saved with "
            "booster.save_model('model.json' or 'model.ubj')"
        )
    booster = load_xgboost(raw)
    names = booster.feature_names or []
    types = booster.feature_types or ["float"] * len(names)
    return [FeatureSpec(name=name, type=kind) for name, kind in zip(names, types, strict=False)]


def load_xgboost(raw: bytes) -> Any:
    """Load a native XGBoost model from bytes (JSON or UBJ is detected by XGBoost).

    Raises:
        InvalidInput: XGBoost cannot parse the bytes.
    """
    import xgboost

    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgboost.core.XGBoostError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise InvalidInput(f"not a valid XGBoost model: {first_line[:200]}") from exc
    return booster


def load_model(path: Path, flavor: Flavor, *, allow_pickle: bool = False) -> Any:
    """Load a verified artifact.

    Raises:
        InvalidInput: a pickle flavor without ``allow_pickle`` (or without joblib installed),
            or unreadable bytes.
    """
    if flavor is Flavor.XGBOOST:
        return load_xgboost(path.read_bytes())
    if flavor in PICKLE_FLAVORS:
        if not allow_pickle:
            raise InvalidInput(
                f"model flavor {flavor.value!r} is a pickle; loading it needs an explicit opt-in "
                "(ALLOW_PICKLE_MODELS=true on the server)"
            )
        try:
            import joblib  # type: ignore[import-not-found]  # optional: only for opted-in pickles
        except ImportError as exc:
            # Part of the documented contract (InvalidInput), not a bare ImportError that the
            # API would answer with a 500.
            raise InvalidInput(
                f"model flavor {flavor.value!r} needs joblib, which is not installed"
            ) from exc
        return joblib.load(path)
    raise InvalidInput(f"cannot load flavor {flavor.value!r}")
