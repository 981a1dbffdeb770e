"""The Starlette application of `softmax serve`: the drawing page at /, and its JSON API.

GET /api/model describes the model (data set, framing, preprocessing, test accuracy, class names, image shape,
and its weights W for the page's weight templates and evidence maps). POST /api/predict takes a PNG or JPEG
image as the body and answers what `softmax predict --json` prints for that image, plus the image the model saw.
Every error is a 4xx answer with one line of JSON, {"error": "..."}, and the server keeps serving. It never
writes a file.

Only requests addressed to the server by a name it was started for are answered (the Host header): a page
elsewhere that rebinds its own DNS name to this server's address (DNS rebinding) is refused, where the browser's
same-origin rule alone would let it read the API. Every answer carries headers that keep the page from being
framed, its files from being sniffed as another type, and its scripts to the server's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
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
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")  # the names this computer calls itself by
SECURITY_HEADERS = [
    ("content-security-policy", "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
]


def host_name(host_header: str) -> str:
    """Return the name a Host header gives, without its port or an IPv6 address's brackets, in lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: refuse a request whose Host is not one of hosts (400, one line of JSON), and add
    SECURITY_HEADERS to every answer."""

    def __init__(self, app, hosts):
        self.app, self.hosts = app, frozenset(host_name(host) for host in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = Headers(scope=scope).get("host", "")
        if host_name(host) not in self.hosts:
            shown = " ".join(host.split())[:100].encode("ascii", "backslashreplace").decode()
            refused = _error(400, f"this server does not answer for the host {shown!r}: open it by the address it "
                                  "printed (softmax serve --allow-host NAME adds a name)")
            return await self._with_headers(refused, scope, receive, send)
        await self.app(scope, receive, self._sending_headers(send))

    @staticmethod
    def _sending_headers(send):
        async def sending(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
            await send(message)
        return sending

    async def _with_headers(self, response, scope, receive, send):
        await response(scope, receive, self._sending_headers(send))


class StrictJSONResponse(JSONResponse):
    """A JSON answer that is strictly JSON: a NaN or infinity is an error here, not an invalid document there."""

    def render(self, content) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def create_app(saved: SavedModel, model_name: str = "model.npz", hosts=LOCAL_HOSTS):
    """Return the application serving the page and the API for the saved model, to requests for one of hosts (the
    names or addresses it may be reached by); model_name is what the page shows (a file's name, not its path)."""
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
        # (the length first: int() of more than 4,300 digits raises)
        if not (top_k.isascii() and top_k.isdigit() and len(top_k) <= 4 and 1 <= int(top_k) <= len(saved.class_names)):
            return _error(400, f"top_k must be a whole number from 1 to {len(saved.class_names)}, not {top_k[:20]!r}")
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

    return Guard(Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/model", model, methods=["GET"]),
            Route("/api/predict", predict, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    ), hosts)
