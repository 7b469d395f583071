"""The ``retriever`` flavor: one ``.npz`` of numeric arrays and a JSON manifest, no pickle."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tracking import ExperimentLogger, InvalidInput, ModelRegistry
from tracking.entities import Flavor
from tracking.flavors import (
    MAX_RETRIEVER_BYTES,
    RETRIEVER_FORMAT,
    load_model,
    load_retriever,
    save_retriever,
)

ARRAYS = {
    "data": np.array([0.5, 1.25, 2.0], dtype=np.float32),
    "indptr": np.array([0, 1, 3], dtype=np.int64),
}


def _bundle(path: Path) -> Path:
    return save_retriever(path, ARRAYS, {"config": {"k1": 1.2}})


def _rezip(source: Path, target: Path, replace: dict[str, bytes]) -> Path:
    """Copy a bundle, swapping some members' bytes."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, replace.get(info.filename, old.read(info.filename)))
        for name, raw in replace.items():
            if name not in old.namelist():
                new.writestr(name, raw)
    return target


def _npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def test_round_trip_keeps_arrays_and_manifest(tmp_path: Path) -> None:
    index = load_retriever(_bundle(tmp_path / "index.npz"))
    assert index.manifest["format"] == RETRIEVER_FORMAT
    assert index.manifest["config"] == {"k1": 1.2}
    assert index.manifest["arrays"]["data"] == {"dtype": "<f4", "shape": [3]}
    assert set(index.arrays) == {"data", "indptr"}
    for name, array in ARRAYS.items():
        assert index.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(index.arrays[name], array)
    assert load_model(tmp_path / "index.npz", Flavor.RETRIEVER).manifest == index.manifest


def test_same_arrays_give_the_same_bytes(tmp_path: Path) -> None:
    # np.savez would stamp the current time into each member; the bundle must not.
    first = _bundle(tmp_path / "a.npz").read_bytes()
    second = _bundle(tmp_path / "b.npz").read_bytes()
    assert first == second


def test_a_pickled_object_array_is_refused_without_running(tmp_path: Path) -> None:
    ran: list[str] = []

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (ran.append, ("executed",))

    evil = np.array([Payload()], dtype=object)
    path = _rezip(_bundle(tmp_path / "ok.npz"), tmp_path / "evil.npz",
                  {"data.npy": _npy(evil, allow_pickle=True)})  # fmt: skip
    with pytest.raises(InvalidInput, match="without pickle"):
        load_retriever(path)
    assert ran == []


def test_a_plain_pickle_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "index.npz"
    path.write_bytes(pickle.dumps(ARRAYS))
    with pytest.raises(InvalidInput, match="is a pickle"):
        load_retriever(path)


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"notes.txt": b"hello"}, "non-.npy members"),
        ({"manifest.npy": _npy(np.array([1.0, 2.0]))}, "no uint8 manifest"),
        ({"manifest.npy": _npy(np.frombuffer(b"{nope", dtype=np.uint8))}, "not JSON"),
        ({"manifest.npy": _npy(np.frombuffer(b'{"format": "x"}', dtype=np.uint8))}, "is not"),
        ({"extra.npy": _npy(np.zeros(2))}, "does not list its arrays"),
        ({"data.npy": _npy(np.zeros(4, dtype=np.float32))}, "does not match its manifest"),
        ({"data.npy": _npy(np.array(["a", "b", "c"]))}, "does not match its manifest"),
    ],
)
def test_malformed_bundles_are_refused(
    tmp_path: Path, replace: dict[str, bytes], message: str
) -> None:
    path = _rezip(_bundle(tmp_path / "ok.npz"), tmp_path / "bad.npz", replace)
    with pytest.raises(InvalidInput, match=message):
        load_retriever(path)


def test_a_zip_bomb_is_refused_before_inflating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same check as at the real 1 GiB limit, scaled down to keep the test fast.
    assert MAX_RETRIEVER_BYTES == 1 << 30
    monkeypatch.setattr("tracking.flavors.MAX_RETRIEVER_BYTES", 1 << 20)
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.npy", bytes(2 << 20))
    assert path.stat().st_size < 64 << 10
    with pytest.raises(InvalidInput, match="inflates past"):
        load_retriever(path)


def test_non_numeric_arrays_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="non-numeric"):
        save_retriever(tmp_path / "x.npz", {"text": np.array(["a"])}, {})
    with pytest.raises(InvalidInput, match="reserved"):
        save_retriever(tmp_path / "x.npz", {"manifest": np.zeros(1)}, {})


def test_registration_checks_the_bundle(tmp_path: Path) -> None:
    logger = ExperimentLogger()
    registry = ModelRegistry()
    good = _bundle(tmp_path / "index.npz")
    bad = tmp_path / "pickled.npz"
    bad.write_bytes(pickle.dumps(ARRAYS))
    with logger.start_run("retriever-flavor") as run:
        run.log_artifact(good, name="index")
        run.log_artifact(bad, name="pickled")
    version = registry.register_model("rag", run_id=run.run_id, artifact="index",
                                      flavor="retriever")  # fmt: skip
    assert version.flavor is Flavor.RETRIEVER
    with pytest.raises(InvalidInput, match="is a pickle"):
        registry.register_model("rag", run_id=run.run_id, artifact="pickled", flavor="retriever")
    assert registry.get_model("rag").latest_version == 1
    chosen, index = registry.load_model("rag", version=1)
    assert chosen.version == 1
    assert json.loads(json.dumps(index.manifest))["config"] == {"k1": 1.2}
