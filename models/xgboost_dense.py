"""``Booster.inplace_predict`` of a dense float32 matrix, with XGBoost's C API called directly.

Why: for one row, ``inplace_predict`` took about 250 µs here, of which the model itself took
about 60. The rest is two things, both per call. The Python wrapper encodes its JSON config,
dispatches over a dozen input kinds and copies the answer out through a ctypes array type it
creates for the call (``_prediction_output``, the largest part under cProfile). Inside the
library, a call without a proxy matrix builds a new one, whose ``Context`` reads the cgroup CPU
quota: 3 ``stat`` and 2 ``open``/``read``/``close`` per prediction (strace on the serving
benchmark's server). That overhead was about a fifth of a whole one-row request.
``DenseBooster`` builds the config once. It keeps one proxy matrix per thread and calls
``XGBoosterPredictFromDense`` as ``inplace_predict`` does for a NumPy array. The call is the
same, and so are its arguments and its answers (``tests/models/test_xgboost_dense.py`` holds
them equal). Any other input goes to ``inplace_predict`` itself: another dtype, a
non-contiguous array, a frame, no rows.

The C functions are XGBoost's public C API (``c_api.h``). ``xgboost.core`` loads them as
``_LIB``, a private name. If that is ever missing, ``dense_booster`` hands back the booster
unchanged, so serving falls back to plain ``inplace_predict`` and never breaks.
"""

from __future__ import annotations

import ctypes
import json
import math
import threading
from typing import Any

import numpy as np
import xgboost
from xgboost import core as _core

#: The arguments ``inplace_predict`` sends with its defaults (values, all trees, NaN missing),
#: encoded as its ``make_jcargs`` does (json, UTF-8).
_CONFIG = json.dumps({
    "type": 0, "training": False, "iteration_begin": 0, "iteration_end": 0,
    "missing": math.nan, "strict_shape": False, "cache_id": 0,
}).encode()  # fmt: skip
_C_FUNCTIONS = ("XGBoosterPredictFromDense", "XGProxyDMatrixCreate", "XGDMatrixFree")
_FLOAT32 = np.dtype(np.float32)
#: NumPy's array interface of a C-contiguous float32 matrix, as ``inplace_predict`` sends it.
_INTERFACE = b'{"data":[%d,false],"shape":[%d,%d],"strides":null,"typestr":"<f4","version":3}'


class _Proxy:
    """One thread's proxy matrix: the C library points it at each call's array."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self.handle = ctypes.c_void_p()
        _core._check_call(lib.XGProxyDMatrixCreate(ctypes.byref(self.handle)))

    def __del__(self) -> None:
        if self.handle.value is not None:
            self._lib.XGDMatrixFree(self.handle)


class DenseBooster:
    """A booster whose ``inplace_predict`` of a C-contiguous float32 matrix skips the wrapper.

    Safe from several threads, like ``inplace_predict``: each thread has its own proxy, and the
    prediction buffer the library returns is its per-thread one, copied before the call returns.
    """

    def __init__(self, booster: xgboost.Booster, lib: Any) -> None:
        self.booster = booster
        self._lib = lib
        self._features = booster.num_features()
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        # Everything else (feature_names, set_param, save_raw, ...) is the booster's own.
        if name == "booster":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.booster, name)

    def _proxy(self) -> _Proxy:
        proxy: _Proxy | None = getattr(self._local, "proxy", None)
        if proxy is None:
            proxy = self._local.proxy = _Proxy(self._lib)
        return proxy

    def inplace_predict(self, data: Any, **options: Any) -> np.ndarray:
        """``Booster.inplace_predict(data, **options)``: the same values, shape and errors.

        Raises:
            ValueError: ``data`` has another number of columns than the booster's features.
            xgboost.core.XGBoostError: the library refused the call.
        """
        if (
            options
            or type(data) is not np.ndarray
            or data.dtype != _FLOAT32
            or data.ndim != 2
            or not data.flags.c_contiguous
            or not data.shape[0]  # no rows: whatever shape the wrapper gives it
        ):
            return self.booster.inplace_predict(data, **options)
        if data.shape[1] != self._features:
            # The message and type inplace_predict gives (validate_features).
            raise ValueError(
                f"Feature shape mismatch, expected: {self._features}, got {data.shape[1]}"
            )
        interface = _INTERFACE % (data.ctypes.data, data.shape[0], data.shape[1])
        shape = ctypes.POINTER(ctypes.c_uint64)()  # bst_ulong is uint64_t (c_api.h)
        dims = ctypes.c_uint64()
        predictions = ctypes.POINTER(ctypes.c_float)()
        _core._check_call(
            self._lib.XGBoosterPredictFromDense(
                self.booster.handle,
                interface,
                _CONFIG,
                self._proxy().handle,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(predictions),
            )
        )
        out_shape = tuple(int(shape[i]) for i in range(dims.value))
        # A copy: the buffer is the library's, reused by this thread's next prediction.
        return np.ctypeslib.as_array(predictions, shape=out_shape).copy()


def dense_booster(booster: Any) -> Any:
    """``booster`` wrapped as a ``DenseBooster`` when it is an XGBoost booster, else itself."""
    lib = getattr(_core, "_LIB", None)
    if type(booster) is not xgboost.Booster or lib is None:
        return booster
    if not hasattr(_core, "_check_call") or not all(hasattr(lib, name) for name in _C_FUNCTIONS):
        return booster
    return DenseBooster(booster, lib)
