"""The Starlette application of `softmax serve`: the drawing page at /, and its JSON API.

GET /api/model describes the model (data set, framing, preprocessing, test accuracy, class names, image shape,
and its weights W for the page's weight templates and evidence maps). POST /api/predict takes a PNG or JPEG
image as the body and answers what `softmax predict --json` prints for that image, plus the image the model saw.
POST /api/learn takes labelled drawings (the .npz the page downloads) and teaches the model them (teach.py): the
taught model is served from then on and answers the lesson's figures; GET /api/model.npz gives the taught model's
file and POST /api/reset goes back to the model as loaded. Every error is a 4xx answer with one line of JSON,
{"error": "..."}, and the server keeps serving. It never writes a file: the model file on disk is never changed.

Only requests addressed to the server by a name it was started for are answered (the Host header): a page
elsewhere that rebinds its own DNS name to this server's address (DNS rebinding) is refused, where the browser's
same-origin rule alone would let it read the API. Every answer carries headers that keep the page from being
framed, its files from being sniffed as another type, and its scripts to the server's own.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import SoftmaxError
from ..predict import predict_image
from ..store import SavedModel
from ..teach import CannotTeach

STATIC = Path(__file__).parent / "static"
LOG = logging.getLogger("uvicorn.error")  # uvicorn's own log: its lines go where the server's do
MAX_BODY_BYTES = 5 * 2**20  # a drawing is a few KB, a phone photo a few MB
# What the API takes, and how each format's files begin: a body is checked against the type it claims.
IMAGE_TYPES = {"image/png": (b"\x89PNG\r\n\x1a\n", "PNG"), "image/jpeg": (b"\xff\xd8\xff", "JPEG")}
# Predictions run in worker threads, in two lanes so that photos cannot hold drawings up: a drawing (at most
# LARGE_PIXELS, milliseconds of work) takes one of WORKERS threads; a photo (up to MAX_PIXELS, read from its
# header before anything is decoded: a 16-megapixel one takes about a second and 200 MB) takes the one photo
# thread, with at most PHOTOS_QUEUED more waiting (beyond them a 503 with Retry-After). Work waiting for a thread
# is dropped when its client has gone. (The server caps the connections themselves: cli/serve.py.)
WORKERS = max(1, min(4, os.cpu_count() or 1))
LARGE_PIXELS = 2_000_000
PHOTOS_QUEUED = 2
MAX_PIXELS = 16_000_000
MAX_LESSON = 2000  # drawings a lesson takes: 500 are taught in under half a second (bench/teach.py)
LESSON_TYPES = ("application/zip", "application/octet-stream", "application/x-npz")  # an .npz is a zip archive
BODY_SECONDS = 30  # a body not received within this (a client trickling bytes) is answered 408
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


class Lane:
    """Threads for one kind of work, and how many requests may wait for them (None: as many as come)."""

    def __init__(self, threads: int, queued: int | None):
        self.limiter, self.queued, self.waiting = anyio.CapacityLimiter(threads), queued, 0

    def full(self) -> bool:
        """Return whether a request now would have to wait beyond the queue's bound."""
        busy = self.limiter.borrowed_tokens >= self.limiter.total_tokens
        return busy and self.queued is not None and self.waiting >= self.queued

    async def wait_for_a_thread(self) -> None:
        """Wait until a thread is free and take it (give it back with self.limiter.release())."""
        self.waiting += 1
        try:
            await self.limiter.acquire()
        finally:
            self.waiting -= 1


def _pixel_count(image: bytes) -> int | None:
    """Return the pixels an image's header says it has (nothing is decoded); None when Pillow cannot tell, which
    predict_image then says in its own words."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image)) as opened:
            width, height = opened.size
    except Image.DecompressionBombError:
        return MAX_PIXELS + 1
    except Exception:  # noqa: BLE001 (any damage: predict_image names it)
        return None
    return width * height


async def _body(request: Request, what: str) -> bytearray | Response:
    """Return the request's body (what: what messages call it), or the error answer when it is too large
    (MAX_BODY_BYTES), does not arrive within BODY_SECONDS, or its client leaves."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _error(413, f"{what} is larger than {MAX_BODY_BYTES // 2**20} MB: send a smaller one")
    body = bytearray()
    try:
        with anyio.fail_after(BODY_SECONDS):
            async for chunk in request.stream():  # counted as it comes: Content-Length may be absent or false
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    return _error(413, f"{what} is larger than {MAX_BODY_BYTES // 2**20} MB: send a smaller one")
    except TimeoutError:
        return _error(408, f"{what} did not arrive within {BODY_SECONDS} s: send it again")
    except ClientDisconnect:  # nobody is left to answer; one line on the server's terminal, not a traceback
        LOG.warning(f"softmax serve: a client left before {what.replace('the ', 'its ', 1)} had arrived")
        return Response(status_code=400)
    return body


def _lesson(teacher, body: bytes):
    """Return the teach.Lesson of the drawings in body (an .npz), refused in one SoftmaxError line when empty,
    more than MAX_LESSON (before any is framed) or not drawings the model takes."""
    from ..data.examples import read_drawings

    saved = teacher.saved
    if not body:
        raise SoftmaxError("the body is empty: send the drawings as the .npz the page downloads")
    height, width = saved.image_shape
    # at most MAX_LESSON images of float64 pixels: a few MB of zip may declare gigabytes of zeros
    examples = read_drawings(body, saved.class_names, saved.image_shape, saved.framing,
                             max_bytes=MAX_LESSON * height * width * 8 + 4096, max_examples=MAX_LESSON)
    return teacher.lesson(examples)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


class Served:
    """The model the server answers with now: as loaded, or taught (teach.Lesson), and its /api/model JSON."""

    def __init__(self, saved, model_name: str, teach_note: str | None, lesson=None, version: int = 0):
        self.saved, self.lesson = (saved if lesson is None else lesson.model), lesson
        self.version = version  # 0 as loaded, then one number a lesson: a page holding another reloads the model
        description = {
            "model": model_name,
            "dataset": self.saved.dataset,
            "framing": self.saved.framing,
            "preprocess": self.saved.preprocess,
            "test_accuracy": self.saved.metadata.get("test_accuracy"),
            "class_names": list(self.saved.class_names),
            "image_shape": list(self.saved.image_shape),
            "W": self.saved.W.T.tolist(),  # one row per class: that class's weight template, pixels in row order
            "b": self.saved.b.tolist(),
            "max_body_bytes": MAX_BODY_BYTES,
            "max_lesson": MAX_LESSON,
            "can_teach": teach_note is None,
            "teach_note": teach_note,   # why the model cannot be taught here, and what to do; None when it can
            "taught": None if lesson is None else lesson.to_dict(),
            "version": version,
        }
        # Rendered once, here: a large model's JSON (hundreds of MB for 1024x1024 pixels) must not be built on the
        # event loop at each request, where it held every other client up for seconds.
        self.json = json.dumps(description, allow_nan=False, separators=(",", ":")).encode()


def create_app(saved: SavedModel, model_name: str = "model.npz", hosts=LOCAL_HOSTS, teacher=None,
               teach_note: str | None = None):
    """Return the application serving the page and the API for the saved model, to requests for one of hosts (the
    names or addresses it may be reached by); model_name is what the page shows (a file's name, not its path).

    teacher (a teach.Teacher of the model) teaches it at POST /api/learn; without one, teach_note says why not."""
    lanes = {False: Lane(WORKERS, queued=None), True: Lane(1, queued=PHOTOS_QUEUED)}  # by "is it a photo"
    lessons = Lane(1, queued=0)  # one lesson at a time: another meanwhile is answered 503
    if teacher is None and teach_note is None:
        teach_note = "this server was started without the model's training data"
    loaded = Served(saved, model_name, teach_note)
    served = loaded  # replaced whole (one assignment) by a lesson or a reset: a request reads one or the other
    versions = itertools.count(1)

    async def page(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def model(request: Request):
        return Response(served.json, media_type="application/json")

    async def model_file(request: Request):
        if served.lesson is None:
            return _error(404, f"the model has not been taught: its file is {model_name}, which the server serves "
                               "unchanged")
        stem = model_name.removesuffix(".npz")
        return Response(served.lesson.file, media_type="application/octet-stream",
                        headers={"content-disposition": f'attachment; filename="{stem}-taught.npz"'})

    async def learn(request: Request):
        nonlocal served
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in LESSON_TYPES:
            return _error(415, "send the drawings as the .npz the page downloads, with Content-Type application/zip, "
                          f"not {media_type or 'no Content-Type'}")
        if teacher is None:
            return _error(409, f"the model cannot be taught here: {teach_note}")
        body = await _body(request, "the drawings")
        if isinstance(body, Response):
            return body
        if lessons.full():
            return _error(503, "the model is being taught already: wait for that lesson to end")
        await lessons.wait_for_a_thread()
        try:
            lesson = await anyio.to_thread.run_sync(lambda: _lesson(teacher, bytes(body)))
            version = next(versions)
            taught = await anyio.to_thread.run_sync(lambda: Served(saved, model_name, None, lesson, version))
        except CannotTeach as e:
            return _error(409, f"the model cannot be taught here: {e}")
        except SoftmaxError as e:
            return _error(422, str(e))
        finally:
            lessons.limiter.release()
        served = taught
        return StrictJSONResponse(lesson.to_dict())

    async def reset(request: Request):
        nonlocal served
        served = loaded
        return StrictJSONResponse({"taught": None})

    async def predict(request: Request):
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in IMAGE_TYPES:
            return _error(415, f"send a PNG or JPEG image with Content-Type image/png or image/jpeg, "
                          f"not {media_type or 'no Content-Type'}")
        now = served  # the one model this request is answered by, whatever a lesson does meanwhile
        model_now = now.saved
        top_k = request.query_params.get("top_k", "1")
        # (the length first: int() of more than 4,300 digits raises)
        if not (top_k.isascii() and top_k.isdigit() and len(top_k) <= 4
                and 1 <= int(top_k) <= len(model_now.class_names)):
            return _error(400, f"top_k must be a whole number from 1 to {len(model_now.class_names)}, not "
                               f"{top_k[:20]!r}")
        body = await _body(request, "the image")
        if isinstance(body, Response):
            return body
        if not body:
            return _error(400, "the body is empty: send the image file's bytes")
        signature, format_name = IMAGE_TYPES[media_type]
        if not body.startswith(signature):
            return _error(415, f"the body is not a {format_name} image, as its Content-Type {media_type} says")
        pixels = _pixel_count(bytes(body))
        if pixels is not None and pixels > MAX_PIXELS:
            return _error(413, f"the image has {pixels:,} pixels, more than the {MAX_PIXELS:,} this server takes: "
                               "scale it down first")
        lane = lanes[pixels is not None and pixels > LARGE_PIXELS]
        if lane.full():
            return JSONResponse({"error": "the server is busy with other photos: try again in a moment"},
                                status_code=503, headers={"Retry-After": "1"})
        await lane.wait_for_a_thread()
        try:
            if await request.is_disconnected():  # gone while waiting: its image is not worth a worker
                return Response(status_code=400)
            prediction = await anyio.to_thread.run_sync(
                lambda: predict_image(model_now, bytes(body), top_k=int(top_k), name="the image"))
        except SoftmaxError as e:
            return _error(422, str(e))
        finally:
            lane.limiter.release()
        answer = prediction.as_json("-")
        answer["input"] = np.round(prediction.input, 4).tolist()    # what the model saw, rows of pixels in [0, 1]
        answer["framed"] = np.round(prediction.framed, 4).tolist()  # before preprocessing: a training image's form
        answer["model_version"] = now.version  # which model answered (GET /api/model's version)
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
            Route("/api/learn", learn, methods=["POST"]),
            Route("/api/reset", reset, methods=["POST"]),
            Route("/api/model.npz", model_file, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    ), hosts)
