"""The Starlette application of `softmax serve`: the drawing page at /, and its JSON API.

GET /api/model describes the model (data set, framing, preprocessing, test accuracy, class names, image shape,
and its weights W for the page's weight templates and evidence maps). POST /api/predict takes a PNG or JPEG
image as the body and answers what `softmax predict --json` prints for that image, plus the image the model saw.
Every error is a 4xx answer with one line of JSON, {"error": "..."}, and the server keeps serving. It never
writes a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import SoftmaxError
from ..predict import predict_image
from ..store import SavedModel

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 5 * 2**20  # a drawing is a few KB, a phone photo a few MB
# What the API takes, and how each format's files begin: a body is checked against the type it claims.
IMAGE_TYPES = {"image/png": (b"\x89PNG\r\n\x1a\n", "PNG"), "image/jpeg": (b"\xff\xd8\xff", "JPEG")}
# Predictions run in worker threads, at most this many at a time, so that many large images at once cannot use
# more memory than a few (each decoded image may take up to images.MAX_PIXELS * 4 bytes).
WORKERS = max(1, min(4, os.cpu_count() or 1))


class StrictJSONResponse(JSONResponse):
    """A JSON answer that is strictly JSON: a NaN or infinity is an error here, not an invalid document there."""

    def render(self, content) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def create_app(saved: SavedModel, model_name: str = "model.npz") -> Starlette:
    """Return the application serving the page and the API for the saved model; model_name is what the page shows."""
    limiter = anyio.CapacityLimiter(WORKERS)
    description = {
        "model": model_name,
        "dataset": saved.dataset,
        "framing": saved.framing,
        "preprocess": saved.preprocess,
        "test_accuracy": saved.metadata.get("test_accuracy"),
        "class_names": list(saved.class_names),
        "image_shape": list(saved.image_shape),
        "W": saved.W.T.tolist(),  # one row per class: that class's weight template, pixels in row order
        "b": saved.b.tolist(),
        "max_body_bytes": MAX_BODY_BYTES,
    }

    async def page(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def model(request: Request):
        return StrictJSONResponse(description)

    async def predict(request: Request):
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in IMAGE_TYPES:
            return _error(415, f"send a PNG or JPEG image with Content-Type image/png or image/jpeg, "
                          f"not {media_type or 'no Content-Type'}")
        top_k = request.query_params.get("top_k", "1")
        if not top_k.isascii() or not top_k.isdigit() or not 1 <= int(top_k) <= len(saved.class_names):
            return _error(400, f"top_k must be a whole number from 1 to {len(saved.class_names)}, not {top_k!r}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _error(413, f"the image is larger than {MAX_BODY_BYTES // 2**20} MB: send a smaller one")
        body = bytearray()
        async for chunk in request.stream():  # counted as it comes: Content-Length may be absent or false
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _error(413, f"the image is larger than {MAX_BODY_BYTES // 2**20} MB: send a smaller one")
        if not body:
            return _error(400, "the body is empty: send the image file's bytes")
        signature, format_name = IMAGE_TYPES[media_type]
        if not body.startswith(signature):
            return _error(415, f"the body is not a {format_name} image, as its Content-Type {media_type} says")
        try:
            prediction = await anyio.to_thread.run_sync(
                lambda: predict_image(saved, bytes(body), top_k=int(top_k), name="the image"), limiter=limiter
            )
        except SoftmaxError as e:
            return _error(422, str(e))
        answer = prediction.as_json("-")
        answer["input"] = np.round(prediction.input, 4).tolist()    # what the model saw, rows of pixels in [0, 1]
        answer["framed"] = np.round(prediction.framed, 4).tolist()  # before preprocessing: a training image's form
        return StrictJSONResponse(answer)

    async def http_error(request: Request, error: HTTPException):
        return _error(error.status_code, error.detail if isinstance(error.detail, str) else "request refused")

    async def server_error(request: Request, error: Exception):
        return _error(500, f"the server could not answer ({type(error).__name__}): see its log")

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/model", model, methods=["GET"]),
            Route("/api/predict", predict, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
