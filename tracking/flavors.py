"""Model flavors: how an artifact is checked at registration and loaded for serving.

XGBoost models are accepted only in XGBoost's native JSON or UBJ formats, which hold data, not
code. Pickle-based flavors (``sklearn``, ``joblib``) can run arbitrary code when loaded, so they are
registered only with ``allow_pickle=True`` and loaded only when the loader is told to allow them
(the API's ``ALLOW_PICKLE_MODELS=true``).

Retriever indexes (``retriever``) are one ``.npz`` file: numeric ``.npy`` arrays plus a
``manifest`` member, a UTF-8 JSON object stored as a ``uint8`` array. NumPy reads it with
``allow_pickle=False``, which refuses object arrays (the only way an ``.npy`` holds a pickle), so
loading one never runs code. One file, because a registered version points at one artifact.

ONNX models (``onnx``) are one ``.onnx`` file: a protobuf graph of standard operators (scikit-learn
pipelines converted with skl2onnx at training time), run by onnxruntime's CPU provider. It holds
no code; onnxruntime refuses operators it does not implement, and the graph is read from the
verified bytes, so it cannot pull in external data files. onnxruntime is imported only when an
ONNX version is loaded (a server that serves none never pays its ~0.1 s import).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracking.entities import PICKLE_FLAVORS, FeatureSpec, Flavor
from tracking.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np

#: First bytes of a pickle stream (protocol 2+ starts with PROTO 0x80).
_PICKLE_MAGIC = b"\x80"
#: First bytes of a zip archive (an ``.npz``).
_ZIP_MAGIC = b"PK\x03\x04"
RETRIEVER_FORMAT = "retriever-index"
RETRIEVER_FORMAT_VERSION = 1
#: Inflated size allowed for a retriever bundle, checked from the zip directory before any member
#: is decompressed (a small compressed file must not expand into gigabytes).
MAX_RETRIEVER_BYTES = 1 << 30
#: Bool, signed and unsigned integers, floats: dtypes that carry numbers only.
_NUMERIC_KINDS = frozenset("biuf")
#: onnxruntime threads per session. Serving runs one request at a time per worker and a request
#: has a few rows: a thread pool costs more than it saves (bench/onnx_bench.py measures it).
ONNX_THREADS = 1
#: Fixed member timestamp, so the same arrays give the same bytes (and the same SHA-256).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


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


@dataclass(frozen=True)
class RetrieverIndex:
    """A retriever bundle as read from disk: its manifest and its numeric arrays by name."""

    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray[Any, Any]]


def save_retriever(
    path: Path, arrays: Mapping[str, np.ndarray[Any, Any]], manifest: Mapping[str, Any]
) -> Path:
    """Write ``arrays`` and ``manifest`` as one retriever bundle (deterministic bytes).

    The manifest gains ``format``, ``format_version`` and ``arrays`` (each array's dtype and
    shape), which loading checks.

    Raises:
        InvalidInput: an array is not numeric, or is named ``manifest``.
    """
    import numpy as np

    described: dict[str, Any] = {}
    for name, array in arrays.items():
        if name == "manifest" or not name.isidentifier():
            raise InvalidInput(f"retriever array name {name!r} is reserved or not an identifier")
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise InvalidInput(f"retriever array {name!r} has non-numeric dtype {array.dtype}")
        described[name] = {"dtype": array.dtype.str, "shape": list(array.shape)}
    document = {
        **manifest,
        "format": RETRIEVER_FORMAT,
        "format_version": RETRIEVER_FORMAT_VERSION,
        "arrays": described,
    }
    encoded = json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
    members = {"manifest": np.frombuffer(encoded, dtype=np.uint8), **arrays}
    # np.savez stamps members with the current time; writing the zip here keeps bytes stable.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
    return path


def load_retriever(path: Path) -> RetrieverIndex:
    """Read a retriever bundle without pickle and check it against its manifest.

    Raises:
        InvalidInput: a pickle, not a zip, too large once inflated, an object (pickled) or
            non-numeric array, a member that is not ``.npy``, or a manifest that is missing,
            not of this format, or does not describe the arrays exactly.
    """
    import numpy as np

    with path.open("rb") as handle:
        head = handle.read(len(_ZIP_MAGIC))
    if head != _ZIP_MAGIC:
        kind = "a pickle" if head[:1] == _PICKLE_MAGIC else "not an .npz bundle"
        raise InvalidInput(f"retriever artifact {path.name!r} is {kind}")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        bad = [i.filename for i in infos if not i.filename.endswith(".npy") or "/" in i.filename]
        if bad:
            raise InvalidInput(f"retriever artifact {path.name!r} has non-.npy members {bad[:5]}")
        if sum(i.file_size for i in infos) > MAX_RETRIEVER_BYTES:
            raise InvalidInput(
                f"retriever artifact {path.name!r} inflates past {MAX_RETRIEVER_BYTES} bytes"
            )
        # allow_pickle=False: an object array (a pickle inside an .npy) raises ValueError.
        with np.load(path, allow_pickle=False) as bundle:
            arrays = {name: bundle[name] for name in bundle.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InvalidInput(
            f"retriever artifact {path.name!r} cannot be read without pickle: {str(exc)[:200]}"
        ) from exc
    raw = arrays.pop("manifest", None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise InvalidInput(f"retriever artifact {path.name!r} has no uint8 manifest")
    try:
        manifest = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"retriever artifact {path.name!r}: manifest is not JSON") from exc
    if not isinstance(manifest, dict) or (
        manifest.get("format"),
        manifest.get("format_version"),
    ) != (RETRIEVER_FORMAT, RETRIEVER_FORMAT_VERSION):
        raise InvalidInput(
            f"retriever artifact {path.name!r} is not {RETRIEVER_FORMAT} "
            f"version {RETRIEVER_FORMAT_VERSION}"
        )
    declared = manifest.get("arrays")
    if not isinstance(declared, dict) or set(declared) != set(arrays):
        raise InvalidInput(f"retriever artifact {path.name!r}: manifest does not list its arrays")
    for name, array in arrays.items():
        spec = declared[name]
        if (
            array.dtype.kind not in _NUMERIC_KINDS
            or not isinstance(spec, dict)
            or spec.get("dtype") != array.dtype.str
            or spec.get("shape") != list(array.shape)
        ):
            raise InvalidInput(
                f"retriever artifact {path.name!r}: array {name!r} ({array.dtype}, "
                f"{array.shape}) does not match its manifest"
            )
    return RetrieverIndex(manifest=manifest, arrays=arrays)


def check_retriever_artifact(path: Path) -> None:
    """Prove at registration that a retriever artifact loads without pickle.

    Raises:
        InvalidInput: as ``load_retriever``.
    """
    load_retriever(path)


def load_onnx(raw: bytes, *, threads: int = ONNX_THREADS) -> Any:
    """An onnxruntime ``InferenceSession`` on the CPU provider, built from verified bytes.

    Raises:
        InvalidInput: a pickle, or bytes onnxruntime cannot load as a model.
    """
    if raw[:1] == _PICKLE_MAGIC:
        raise InvalidInput(
            "onnx artifact is a pickle; convert scikit-learn models with skl2onnx instead"
        )
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Its own warnings (e.g. unused initialisers) go to stderr, not into the JSON logs.
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(
            raw, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own (pybind) classes, no common base
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise InvalidInput(f"not a valid ONNX model: {first_line[:200]}") from exc


def check_onnx_artifact(path: Path) -> None:
    """Prove at registration that an ONNX artifact opens as an onnxruntime session.

    Raises:
        InvalidInput: as ``load_onnx``.
    """
    load_onnx(path.read_bytes())


def load_model(path: Path, flavor: Flavor, *, allow_pickle: bool = False) -> Any:
    """Load a verified artifact.

    Raises:
        InvalidInput: a pickle flavor without ``allow_pickle`` (or without joblib installed),
            or unreadable bytes.
    """
    if flavor is Flavor.XGBOOST:
        return load_xgboost(path.read_bytes())
    if flavor is Flavor.RETRIEVER:
        return load_retriever(path)
    if flavor is Flavor.ONNX:
        return load_onnx(path.read_bytes())
    if flavor in PICKLE_FLAVORS:
        if not allow_pickle:
            raise InvalidInput(
                f"model flavor {flavor.value!r} is a pickle; loading it needs an explicit opt-in "
                "(ALLOW_PICKLE_MODELS=true on the server)"
            )
        try:
            import joblib  # optional: only for opted-in pickles
        except ImportError as exc:
            # Part of the documented contract (InvalidInput), not a bare ImportError that the
            # API would answer with a 500.
            raise InvalidInput(
                f"model flavor {flavor.value!r} needs joblib, which is not installed"
            ) from exc
        return joblib.load(path)
    raise InvalidInput(f"cannot load flavor {flavor.value!r}")
