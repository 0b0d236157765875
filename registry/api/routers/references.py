"""Routes for a version's reference profile: raw bytes in, raw bytes out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep
from registry.api.routers._params import ModelName, VersionNumber
from registry.api.schemas import ReferencePublic
from registry.errors import InvalidInput

router = APIRouter(prefix="/models/{name}/versions/{version}", tags=["references"])

PATH_PATTERN = r"/api/v1/models/[^/]+/versions/[^/]+/reference"
"""The upload path, which gets the larger reference body limit."""
_TAG = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.put("/reference", response_model=ReferencePublic, openapi_extra=_BINARY_BODY)
async def put_reference(
    name: ModelName,
    version: VersionNumber,
    request: Request,
    db: DbDep,
    actor: MaintainerDep,
    n_samples: Annotated[int, Query(ge=1, le=2_147_483_647)],
    modules: Annotated[str, Query(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")],
    format: Annotated[str | None, Query(pattern=_TAG)] = None,
    x_reference_format: Annotated[str | None, Header(pattern=_TAG)] = None,
) -> ReferencePublic:
    """Store the version's reference profile (body: the bytes; format by query or header)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/octet-stream":
        raise InvalidInput("send the reference profile as Content-Type: application/octet-stream")
    fmt = format or x_reference_format
    if fmt is None or (format and x_reference_format and format != x_reference_format):
        raise InvalidInput("give the format once: query `format=` or header X-Reference-Format")
    blob = await request.body()
    names = modules.split(",")  # every entry checked by the service: an empty one is refused
    info = await run_in_threadpool(
        service.attach_reference, db, actor, model=name, version=version, fmt=fmt, blob=blob,
        n_samples=n_samples, modules=names,
    )
    return ReferencePublic.model_validate(info.model_dump())


@router.get(
    "/reference",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_reference(name: ModelName, version: VersionNumber, db: DbDep, actor: ActorDep) -> Response:
    """Return the profile bytes; format, sha256 and samples come as headers (modules: /info)."""
    ref = service.get_reference(db, actor, name, version)
    return Response(
        ref.blob,
        media_type="application/octet-stream",
        headers={
            "ETag": f'"{ref.info.sha256}"',
            "X-Reference-Format": ref.info.format,
            "X-Reference-Sha256": ref.info.sha256,
            "X-Reference-Samples": str(ref.info.n_samples),
        },
    )


@router.get("/reference/info", response_model=ReferencePublic)
def get_reference_info(
    name: ModelName, version: VersionNumber, db: DbDep, actor: ActorDep
) -> ReferencePublic:
    """Describe the profile (format, sha256, size, samples, modules) in a JSON body."""
    ref = service.get_reference(db, actor, name, version)
    return ReferencePublic.model_validate(ref.info.model_dump())
