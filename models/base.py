"""The ``Predictor`` protocol and loading a registered version into one.

Loading downloads the version's artifact, verifies its SHA-256 against the registry, loads it in
the flavor's native format (pickles only with ``allow_pickle``) and wraps it in the predictor the
version's flavor and signature call for (``models.catalog``).
"""

from __future__ import annotations

from models.catalog import load_predictor
from models.serving import Predictor, ServedModel

__all__ = ["Predictor", "ServedModel", "load_predictor"]
