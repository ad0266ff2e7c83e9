"""Data objects (tag "Keys", reference §3.1): named values of up to 64 KB.

``DELETE /v1/dataObject/{name}`` is hsmgate's choice where the reference gives no path (GAP).
"""

from __future__ import annotations

from fastapi import Path, Response, status

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.routes import empty, empty_response, tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.data_objects import DataObjectAttributesOut, DataObjectDto, DataObjectResponseDto
from hsmgate.domain.data_objects import DataObject

router = tsb_router(tags=["Keys"], responses=ERROR_RESPONSES)

NamePath = Path(min_length=1, max_length=256, description="The data object's name")


def _response(data_object: DataObject) -> DataObjectResponseDto:
    return DataObjectResponseDto(
        name=data_object.name, value=encode_base64(data_object.value),
        attributes=DataObjectAttributesOut(private=data_object.private, modifiable=data_object.modifiable,
                                           destroyable=data_object.destroyable),
    )


@router.post("/v1/dataObject", status_code=status.HTTP_201_CREATED, operation_id="createDataObject",
             response_model=DataObjectResponseDto, responses={200: {"model": DataObjectResponseDto,
                                                                    "description": "Value of a modifiable object replaced"}},
             summary="Create a data object (201), or replace the value of a modifiable one (200)")
def create_data_object(body: DataObjectDto, services: ServicesDep, caller: CallerDep,
                       response: Response) -> DataObjectResponseDto:
    attributes = body.attributes
    data_object, created = services.data_objects.put(
        caller, name=body.name, value=body.value,
        private=attributes.private_ if attributes else None,
        modifiable=attributes.modifiable if attributes else None,
        destroyable=attributes.destroyable if attributes else None,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _response(data_object)


@router.get("/v1/dataObject/{name}", operation_id="getDataObject", response_model=DataObjectResponseDto,
            summary="A data object with its value")
def get_data_object(services: ServicesDep, caller: CallerDep, name: str = NamePath) -> DataObjectResponseDto:
    return _response(services.data_objects.get(caller, name))


@router.delete("/v1/dataObject/{name}", operation_id="deleteDataObject",
               summary="Delete a destroyable data object", **empty_response())
def delete_data_object(services: ServicesDep, caller: CallerDep, name: str = NamePath) -> Response:
    services.data_objects.delete(caller, name)
    return empty()
