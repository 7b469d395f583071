"""How the documentation retriever is served: ``POST /predict/rag`` and ``/predict/rag/batch``."""

from __future__ import annotations

from models.rag import MODEL_NAME
from models.rag.features import RagQuery, RagResponse
from models.rag.predictor import RagPredictor
from models.serving import ServedModel, batch_models
from tracking.entities import Flavor

RagBatchRequest, RagBatchResponse = batch_models("Rag", RagQuery, RagResponse)

SERVED = ServedModel(
    name=MODEL_NAME,
    flavor=Flavor.RETRIEVER,
    request=RagQuery,
    response=RagResponse,
    factory=RagPredictor.from_version,
    batch_request=RagBatchRequest,
    batch_response=RagBatchResponse,
    summary="The documentation passages that best answer one query.",
)
