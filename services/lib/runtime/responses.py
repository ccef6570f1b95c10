"""A model answered as JSON once (issue 12, the console's queue under load).

A FastAPI route that returns a pydantic model has it dumped to a dict, validated
again against the `response_model` and serialised: three passes over a page of
200 tasks, measured at a third of a queue request's CPU. Routes whose answer is
already a validated model of the declared type return `model_response(...)`
instead (keep `response_model=` on the route for the OpenAPI document): one
pass, by pydantic-core, with the same JSON.
"""

from __future__ import annotations

from fastapi.responses import Response
from pydantic import BaseModel


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    return Response(
        content=model.model_dump_json(), status_code=status_code, media_type="application/json"
    )
