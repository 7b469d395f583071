"""/ui/runs/{run_id} (one run, its charts and artifacts), /ui/compare and the histories JSON.

Artifacts are read through the artifact store, which checks each file's SHA-256 before handing
it over (``ArtifactStore.download``). What the browser may render is decided here, by both the
name and the bytes: PNG and JPEG (magic bytes checked) are shown as images; text and JSON are
shown escaped inside a page; everything else, HTML and SVG included, is only ever downloaded
(``Content-Disposition: attachment``, ``application/octet-stream``, ``nosniff``, and a sandbox
CSP in case a browser still renders it).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import quote, unquote, urlsplit

from fastapi import APIRouter, Query, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, JSONResponse, Response

from functions.api.auth import requires
from functions.api.deps import LoggerDep
from functions.api.schemas import NamePath, RunIdPath
from functions.api.ui import PREFIX
from functions.api.ui.core import UiRoute, UiState, render
from tracking import ExperimentLogger, InvalidInput, NotFound
from tracking.entities import Artifact, Dataset, RunRecord
from tracking.validation import NAME_PATTERN

router = APIRouter(route_class=UiRoute, prefix=PREFIX, include_in_schema=False)

#: Charts per page; more keys are chosen with ?charts= (the histories are one bulk read).
MAX_CHARTS = 20
MAX_COMPARE = 10
#: The largest text artifact shown inline; bigger ones are downloaded.
MAX_TEXT_BYTES = 1_000_000
IMAGE_TYPES = {".png": ("image/png", b"\x89PNG\r\n\x1a\n"), ".jpg": ("image/jpeg", b"\xff\xd8\xff"),
               ".jpeg": ("image/jpeg", b"\xff\xd8\xff")}  # fmt: skip
TEXT_SUFFIXES = {".txt", ".json", ".csv", ".tsv", ".log", ".md", ".yaml", ".yml", ".jsonl"}
#: For the bytes the browser gets to keep: nothing in them may run, even if rendered.
DOWNLOAD_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"


def dataset_source(dataset: Dataset) -> str:
    """Where a dataset came from, as the UI shows it: the scheme and the file's name.

    The folder or bucket stays out, as in the API (functions/api/views.py): a ``read`` key has no
    use for a training machine's paths or the bucket's name.
    """
    parts = urlsplit(dataset.uri)
    name = unquote(PurePosixPath(parts.path).name) or "(root)"
    return f"{parts.scheme or 'file'}: {name}"


def artifact_kind(artifact: Artifact) -> str:
    """``image``, ``text`` or ``download``: what the run page offers for this file."""
    suffix = PurePosixPath(urlsplit(artifact.uri).path).suffix.lower()
    if suffix in IMAGE_TYPES:
        return "image"
    if suffix in TEXT_SUFFIXES and artifact.size <= MAX_TEXT_BYTES:
        return "text"
    return "download"


def chart_keys(run_keys: list[str], requested: str | None) -> list[str]:
    if requested:
        keys = [key for key in requested.split(",") if NAME_PATTERN.fullmatch(key)]
        return list(dict.fromkeys(keys))[:MAX_CHARTS]
    return run_keys[:MAX_CHARTS]


@router.get("/runs/{run_id}", openapi_extra=requires("read"))
def run_page(
    request: Request,
    run_id: RunIdPath,
    logger: LoggerDep,
    charts: Annotated[str | None, Query(max_length=3000)] = None,
) -> Response:
    """One run: params, tags, datasets, latest metrics, charts and artifacts."""
    run = logger.get_run(run_id)
    keys = sorted(run.metrics)
    shown = chart_keys(keys, charts)
    artifacts = [(artifact, artifact_kind(artifact)) for artifact in run.artifacts.values()]
    return render(
        request,
        "run.html",
        run=run,
        datasets=[(dataset, dataset_source(dataset)) for dataset in run.datasets.values()],
        artifacts=artifacts,
        chart_keys=shown,
        more_keys=len(keys) - len(shown),
        chart_runs=[{"id": run.run_id, "label": run.run_name or run.run_id[:8]}],
        histories_url="histories?runs=" + quote(run.run_id) + "&keys=" + quote(",".join(shown)),
    )


def _read_artifact(logger: ExperimentLogger, run: RunRecord, name: str, folder: Path) -> Path:
    artifact = run.artifacts.get(name)
    if artifact is None:
        raise NotFound(f"run {run.run_id} has no artifact {name!r}")
    target = folder / "artifact"
    # Verified against the SHA-256 and size recorded at upload before the file appears.
    return logger.artifacts.download(artifact.uri, target, artifact.sha256, artifact.size)


def _filename(artifact: Artifact) -> str:
    return PurePosixPath(urlsplit(artifact.uri).path).name or artifact.name


@router.get("/runs/{run_id}/artifacts/{name}", openapi_extra=requires("read"))
def artifact_file(
    request: Request, run_id: RunIdPath, name: NamePath, logger: LoggerDep
) -> Response:
    """The artifact's bytes: PNG/JPEG inline as images, anything else as an attachment."""
    run = logger.get_run(run_id)
    folder = Path(tempfile.mkdtemp(prefix="ui-artifact-"))
    try:
        path = _read_artifact(logger, run, name, folder)
        with path.open("rb") as handle:
            head = handle.read(16)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    artifact = run.artifacts[name]
    suffix = PurePosixPath(_filename(artifact)).suffix.lower()
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": DOWNLOAD_CSP,
        "Cache-Control": "private, no-store",
        "X-Artifact-SHA256": artifact.sha256,
    }
    image = IMAGE_TYPES.get(suffix)
    # Streamed from the verified copy, which is removed once sent.
    cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    if image is not None and head.startswith(image[1]):
        return FileResponse(path, media_type=image[0], headers=headers, background=cleanup)
    filename = quote(_filename(artifact), safe="")
    headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{filename}"
    return FileResponse(
        path, media_type="application/octet-stream", headers=headers, background=cleanup
    )


@router.get("/runs/{run_id}/artifacts/{name}/text", openapi_extra=requires("read"))
def artifact_text(
    request: Request, run_id: RunIdPath, name: NamePath, logger: LoggerDep
) -> Response:
    """A text or JSON artifact shown escaped in a page."""
    run = logger.get_run(run_id)
    artifact = run.artifacts.get(name)
    if artifact is None or artifact_kind(artifact) != "text":
        raise InvalidInput(f"artifact {name!r} is not shown as text; download it")
    with tempfile.TemporaryDirectory(prefix="ui-artifact-") as folder:
        data = _read_artifact(logger, run, name, Path(folder)).read_bytes()
    text = data.decode("utf-8", errors="replace")
    return render(request, "artifact_text.html", run=run, artifact=artifact, text=text)


# -- histories (one bulk read for all charts of a page) ------------------------------------------


@router.get("/histories", openapi_extra=requires("read"))
def histories(
    request: Request,
    logger: LoggerDep,
    runs: Annotated[str, Query(max_length=2000)],
    keys: Annotated[str, Query(max_length=3000)] = "",
) -> Response:
    """``{"runs": {run_id: {key: [[steps], [values]]}}}``, ≤ 1,000 points a series."""
    run_ids = list(dict.fromkeys(part for part in runs.split(",") if part))
    if not 1 <= len(run_ids) <= MAX_COMPARE:
        raise InvalidInput(f"runs: give 1 to {MAX_COMPARE} run ids; got {len(run_ids)}")
    records = [logger.get_run(run_id) for run_id in run_ids]
    wanted = [key for key in keys.split(",") if NAME_PATTERN.fullmatch(key)]
    if not wanted:
        wanted = sorted({key for run in records for key in run.metrics})
    ui: UiState = request.app.state.ui
    body = {"runs": ui.histories.read(logger, records, list(dict.fromkeys(wanted))[:MAX_CHARTS])}
    return JSONResponse(
        body, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    )


# -- compare -------------------------------------------------------------------------------------


def _differs(values: list[str]) -> bool:
    return len(set(values)) > 1


@router.get("/compare", openapi_extra=requires("read"))
def compare(
    request: Request,
    logger: LoggerDep,
    runs: Annotated[list[str] | None, Query(max_length=MAX_COMPARE)] = None,
    charts: Annotated[str | None, Query(max_length=3000)] = None,
) -> Response:
    """2 to 10 runs side by side: params and metrics (differences marked), overlaid charts."""
    # ?runs=a,b,c (bookmarkable) or ?runs=a&runs=b (the runs table's checkboxes).
    parts = [part.strip() for text in runs or [] for part in text.split(",")]
    run_ids = list(dict.fromkeys(part for part in parts if part))
    if not 2 <= len(run_ids) <= MAX_COMPARE:
        raise InvalidInput(f"runs: compare 2 to {MAX_COMPARE} runs; got {len(run_ids)}")
    records = [logger.get_run(run_id) for run_id in run_ids]
    param_keys = sorted({key for run in records for key in run.params})
    metric_keys = sorted({key for run in records for key in run.metrics})
    params = [(key, [run.params.get(key, "") for run in records]) for key in param_keys]
    metrics = []
    for key in metric_keys:
        values = [run.metrics.get(key) for run in records]
        shown = ["" if metric is None else f"{metric.value:.6g}" for metric in values]
        metrics.append((key, shown, _differs(shown)))
    shown_keys = chart_keys(metric_keys, charts)
    return render(
        request,
        "compare.html",
        runs=records,
        params=[(key, values, _differs(values)) for key, values in params],
        metrics=metrics,
        chart_keys=shown_keys,
        more_keys=len(metric_keys) - len(shown_keys),
        chart_runs=[{"id": r.run_id, "label": r.run_name or r.run_id[:8]} for r in records],
        histories_url="histories?runs="
        + quote(",".join(run_ids))
        + "&keys="
        + quote(",".join(shown_keys)),
    )
