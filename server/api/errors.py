"""Errors as RFC 7807 problem JSON (`title`, `detail`, `status`), as Replicate's clients expect.

The same message is also under `error`: serverless functions such as the ones the studio endpoints
replace conventionally answer `{"error": message}`, so an editor built on them reads that field."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.pipelines.manifest import UnknownModel
from server.predictions import InputError, NotInstalled, TooManyJobs

TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request entity too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
}


class BodyTooLarge(StarletteHTTPException):
    # An HTTPException, so that FastAPI re-raises it when the body limit trips while it reads
    # a streamed (chunked) body, instead of turning it into "400: error parsing the body".
    def __init__(self, limit: int):
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


def problem(status: int, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    body = {"title": TITLES.get(status, "Error"), "detail": detail, "status": status, "error": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException):
        return problem(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError):
        errors = [
            {"loc": [str(part) for part in e["loc"] if part != "body"], "msg": e["msg"], "type": e["type"]}
            for e in error.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc']) or 'body'}: {e['msg']}" for e in errors)
        return problem(422, detail, errors=errors)

    @app.exception_handler(InputError)
    async def input_error(_request: Request, error: InputError):
        return problem(422, str(error), errors=error.errors)

    @app.exception_handler(UnknownModel)
    async def unknown_model(_request: Request, error: UnknownModel):
        return problem(404, f"model: {error}")

    @app.exception_handler(NotInstalled)
    async def not_installed(_request: Request, error: NotInstalled):
        return problem(422, f"model: {error}")

    @app.exception_handler(TooManyJobs)
    async def too_many_jobs(_request: Request, error: TooManyJobs):
        return problem(429, str(error), {"Retry-After": str(error.retry_after)})

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_request: Request, error: BodyTooLarge):
        return problem(413, error.detail)
