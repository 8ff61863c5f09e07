"""Dataset versions over HTTP: upload a new version (as the Datasets page and ``cli.py dataset add`` do)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import ErrorBody, responses
from core.data import datasets
from core.data.tables import TableLimits
from core.platform.database import transaction

router = APIRouter(prefix="/v1")
ERRORS = responses(404, 409, 422, 503)


class QualityCheck(BaseModel):
    passed: bool
    checks: list[dict[str, Any]]


class DatasetVersionAnswer(BaseModel):
    name: str
    version: int
    sha256: str
    rows: int
    columns: list[str]
    quality: QualityCheck
    created: bool = Field(description="false when this exact content was already a version (nothing new)")
    retrain_jobs: list[int] = Field(default_factory=list,
                                    description="the retrain.consider job this upload queued: it decides by policy "
                                                "whether to retrain (its result names the retrain job)")


@router.post("/datasets/{name}/versions", tags=["datasets"], status_code=201, response_model=DatasetVersionAnswer,
             responses={200: {"model": DatasetVersionAnswer, "description": "identical content: existing version"},
                        413: {"model": ErrorBody}, **ERRORS})
async def upload_dataset_version(
        request: Request, actor: CurrentActor,
        name: Annotated[str, Path(min_length=1, max_length=64, description="dataset name",
                                  json_schema_extra={"pattern": datasets.NAME_RE.pattern})],
        file: Annotated[UploadFile, File(description="a CSV or Parquet file")],
        description: Annotated[str, Form(max_length=2000)] = "") -> JSONResponse:
    """Register a new version of dataset ``name`` (as the Datasets page does): hashed, certified, profiled."""
    await require(request, actor, "datasets.write")
    settings = request.app.state.runtime.settings
    factory = request.app.state.runtime.factory
    filename = (file.filename or "upload").replace("\x00", "")[-200:] or "upload"

    def register() -> datasets.Registration:
        with transaction(factory) as session:
            return datasets.register(session, actor=actor, name=name, data=file.file, filename=filename,
                                     store=settings.data_store, settings=settings,
                                     source=f"{datasets.API_SOURCE}{filename}",
                                     description=description.replace("\x00", ""),
                                     max_bytes=settings.max_upload_mb * 2**20, limits=TableLimits.of(settings))

    reg = await run_in_threadpool(register)
    answer = reg.as_dict() | {"retrain_jobs": [reg.retrain_consider] if reg.retrain_consider else []}
    return JSONResponse(answer, status_code=201 if reg.created else 200)


class DeprecateIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S",
                        description="what is wrong with the version (audited)")


class VersionStateAnswer(BaseModel):
    name: str
    version: int
    deprecated: bool
    reason: str | None = None
    default_version: int | None = Field(description="the version defaults use now (newest certified, not "
                                                    "deprecated); null when none qualifies")


def _state(factory: Any, change: Any) -> VersionStateAnswer:
    with transaction(factory) as session:
        view = change(session)
        default = datasets.default_number(session, name=view.name)
    return VersionStateAnswer(name=view.name, version=view.version, deprecated=view.deprecated,
                              reason=view.deprecation_reason, default_version=default)


DatasetPathName = Annotated[str, Path(min_length=1, max_length=64, description="dataset name",
                                      json_schema_extra={"pattern": datasets.NAME_RE.pattern})]


@router.post("/datasets/{name}/versions/{version}/deprecate", tags=["datasets"], response_model=VersionStateAnswer,
             responses=ERRORS)
async def deprecate_dataset_version(request: Request, actor: CurrentActor, body: DeprecateIn,
                                    name: DatasetPathName,
                                    version: Annotated[int, Path(ge=1)]) -> VersionStateAnswer:
    """Deprecate a version (as ``cli.py dataset deprecate``): no default picks it any more. Audited."""
    await require(request, actor, "datasets.write")
    factory = request.app.state.runtime.factory
    return await run_in_threadpool(_state, factory, lambda s: datasets.deprecate(
        s, actor=actor, name=name, version=version, reason=body.reason))


@router.post("/datasets/{name}/versions/{version}/restore", tags=["datasets"], response_model=VersionStateAnswer,
             responses=ERRORS)
async def restore_dataset_version(request: Request, actor: CurrentActor,
                                  name: DatasetPathName,
                                  version: Annotated[int, Path(ge=1)]) -> VersionStateAnswer:
    """Undo a deprecation (as ``cli.py dataset restore``). Audited."""
    await require(request, actor, "datasets.write")
    factory = request.app.state.runtime.factory
    return await run_in_threadpool(_state, factory, lambda s: datasets.restore(
        s, actor=actor, name=name, version=version))
