import io
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from softmax_cli.predict import predict_image
from softmax_cli.serve.app import MAX_BODY_BYTES, create_app
from test_images import png_claiming
from test_predict import mnist_model_file, saved  # noqa: F401  (fixtures)


def png(pixels: np.ndarray) -> bytes:
    """Return the PNG file of uint8 pixels."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def drawing(digit: np.ndarray) -> bytes:
    """Return an MNIST digit as the page sends a drawing: a 280x280 PNG, white strokes on black."""
    return png(np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR)))


@pytest.fixture(scope="module")
def client(saved):  # noqa: F811
    with TestClient(create_app(saved, model_name="model.npz"), base_url="http://localhost:8000") as client:
        yield client


def test_the_page_and_its_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<canvas id="pad"' in page.text
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    assert "http" not in client.get("/static/app.js").text.replace("/api/", "")  # nothing from the internet
    assert "http" not in page.text.lower().replace("http-equiv", "")


def test_the_model_is_described(client, saved):  # noqa: F811
    description = client.get("/api/model").json()
    assert description["dataset"] == "mnist" and description["preprocess"] == "none"
    assert description["framing"] == "mnist" and description["test_accuracy"] == 0.92
    assert description["class_names"] == list("0123456789") and description["image_shape"] == [28, 28]
    np.testing.assert_array_equal(np.array(description["W"], np.float32), saved.W.T)
    assert description["model"] == "model.npz"


def test_a_prediction_is_what_predict_json_prints_plus_the_input(client, mnist, saved):  # noqa: F811
    body = drawing(mnist.x_test[0])
    answer = client.post("/api/predict?top_k=3", content=body, headers={"Content-Type": "image/png"})
    assert answer.status_code == 200
    expected = predict_image(saved, body, top_k=3)
    result = answer.json()
    input_, framed = np.array(result.pop("input")), np.array(result.pop("framed"))
    assert result.pop("model_version") == 0  # the model as loaded
    assert result == expected.as_json("-")
    np.testing.assert_allclose(input_, expected.input, atol=1e-4)
    np.testing.assert_allclose(framed, expected.framed, atol=1e-4)
    assert result["label"] == str(mnist.y_test[0]) and len(result["top"]) == 3


def test_a_jpeg_is_predicted_too(client, mnist, saved):  # noqa: F811
    buffer = io.BytesIO()
    Image.fromarray(255 - mnist.x_test[1]).resize((140, 140)).save(buffer, format="JPEG", quality=90)
    answer = client.post("/api/predict", content=buffer.getvalue(), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200
    assert answer.json()["probabilities"] == predict_image(saved, buffer.getvalue()).probabilities.tolist()


def truncated(body: bytes) -> bytes:
    return body[: len(body) // 2]


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n"


@pytest.mark.parametrize(
    "content, content_type, status, message",
    [
        ("big", "image/png", 413, "larger than 5 MB"),
        (b"", "image/png", 400, "empty"),
        (b"hello, world", "image/png", 415, "not a PNG image"),
        ("png", "image/jpeg", 415, "not a JPEG image"),
        ("png", "text/plain", 415, "Content-Type image/png or image/jpeg, not text/plain"),
        ("png", "application/json", 415, "not application/json"),
        ("png", None, 415, "no Content-Type"),
        (b'{"image": [1, 2', "application/json", 415, "image/png or image/jpeg"),   # malformed JSON
        ("truncated", "image/png", 422, "damaged or truncated"),
        (png_claiming(20000, 20000), "image/png", 413, "more than the 16,000,000 this server takes"),  # a decompression bomb
        (b"\x89PNG\r\n\x1a\n" + EPS, "image/png", 422, "not an image file that can be read"),
        ("blank", "image/png", 422, "holds no digit"),
    ],
)
def test_bad_input_is_a_4xx_with_one_line_of_json_and_the_server_keeps_serving(
    client, mnist, content, content_type, status, message
):
    body = {
        "big": png(np.random.default_rng(0).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)),
        "png": drawing(mnist.x_test[0]),
        "truncated": truncated(drawing(mnist.x_test[0])),
        "blank": png(np.zeros((280, 280), np.uint8)),
    }.get(content, content) if isinstance(content, str) else content
    if content == "big":
        assert len(body) > MAX_BODY_BYTES
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post("/api/predict", content=body, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert list(answer.json()) == ["error"] and message in answer.json()["error"]
    assert "\n" not in answer.text
    good = client.post("/api/predict", content=drawing(mnist.x_test[0]), headers={"Content-Type": "image/png"})
    assert good.status_code == 200


def test_a_body_larger_than_it_says_is_cut_off(client):
    def chunks():  # no Content-Length: the server counts what arrives
        for _ in range(6):
            yield b"\x89PNG\r\n\x1a\n" + bytes(2**20)

    answer = client.post("/api/predict", content=chunks(), headers={"Content-Type": "image/png"})
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "method, path, query, status",
    [("GET", "/api/predict", "", 405), ("GET", "/nowhere", "", 404), ("POST", "/api/predict", "?top_k=0", 400),
     ("POST", "/api/predict", "?top_k=11", 400), ("POST", "/api/predict", "?top_k=x", 400)],
)
def test_wrong_paths_methods_and_parameters_are_json_errors(client, mnist, method, path, query, status):
    answer = client.request(method, path + query, content=drawing(mnist.x_test[0]),
                            headers={"Content-Type": "image/png"})
    assert answer.status_code == status and list(answer.json()) == ["error"]


def test_200_concurrent_predictions_are_all_answered_correctly(client, mnist, saved):  # noqa: F811
    bodies = [drawing(digit) for digit in mnist.x_test[:20]]
    expected = [predict_image(saved, body).probabilities.tolist() for body in bodies]

    def ask(i):
        answer = client.post("/api/predict", content=bodies[i % 20], headers={"Content-Type": "image/png"})
        return answer.status_code, answer.json()["probabilities"]

    with ThreadPoolExecutor(max_workers=200) as pool:
        answers = list(pool.map(ask, range(200)))
    assert [status for status, _ in answers] == [200] * 200
    assert all(probabilities == expected[i % 20] for i, (_, probabilities) in enumerate(answers))


# --- the command ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_serve(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "softmax_cli", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def first_line(process, timeout=30.0) -> str:
    """Return the first line the process prints, waiting at most timeout seconds."""
    lines = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, "softmax serve printed nothing"
    return lines[0]


def test_serve_says_where_it_listens_answers_and_stops_on_ctrl_c(mnist_model_file, mnist):  # noqa: F811
    import httpx

    process = start_serve("--model", str(mnist_model_file), "--port", "0")
    try:
        line = first_line(process)
        url = line.split(" at ")[-1].strip()
        assert url.startswith("http://127.0.0.1:") and "mnist" in line
        for _ in range(100):
            try:
                answer = httpx.post(url + "api/predict", content=drawing(mnist.x_test[0]),
                                    headers={"Content-Type": "image/png"}, trust_env=False)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert answer.json()["label"] == str(mnist.y_test[0])
        assert httpx.get(url + "api/model", trust_env=False).json()["model"] == mnist_model_file.name  # no path
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)  # its few lines fit in the pipe; read through the same buffered readers as above
        out, err = process.stdout.read(), process.stderr.read()
    assert "Only this computer can connect (127.0.0.1)" in line + out
    assert process.returncode in (0, 130) and "Traceback" not in err
    assert err.strip() in ("", "softmax: interrupted")


def test_a_port_in_use_is_one_line(mnist_model_file):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_serve("--model", str(mnist_model_file), "--port", str(port))
        out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().startswith(f"softmax: error: cannot listen on 127.0.0.1 port {port}") and "--port 0" in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_model_is_one_line(tmp_path):
    process = start_serve("--model", str(tmp_path / "none.npz"), "--port", str(free_port()))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "none.npz does not exist" in err and "Traceback" not in err


def test_help_does_not_load_the_server():
    code = ("import sys; from softmax_cli.cli import cli\n"
            "try:\n    cli.main(['serve', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'anyio')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--port" in result.stdout and result.stdout.strip().endswith("[]"), result.stdout + result.stderr


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:8000", "127.0.0.1.evil.example.com",
                                  "", "testserver", "localhost.:8000", "[::2]:8000"])
def test_a_request_for_another_host_is_refused_so_dns_rebinding_cannot_read_the_model(client, host):
    for method, path in (("GET", "/api/model"), ("GET", "/"), ("GET", "/static"), ("POST", "/api/predict")):
        answer = client.request(method, path, headers={"Host": host}, follow_redirects=False)
        assert answer.status_code == 400, (method, path)
        assert "does not answer for the host" in answer.json()["error"]
        assert "location" not in answer.headers and "W" not in answer.text


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "127.0.0.1"])
def test_the_local_names_are_answered(client, host):
    assert client.get("/api/model", headers={"Host": host}).status_code == 200


def test_the_names_the_server_was_started_for_are_answered(saved):  # noqa: F811
    with TestClient(create_app(saved, hosts=["class.example.org"]), base_url="http://class.example.org") as other:
        assert other.get("/api/model").status_code == 200
        assert other.get("/api/model", headers={"Host": "localhost"}).status_code == 400


def test_every_answer_carries_the_security_headers(client):
    for answer in (client.get("/"), client.get("/api/model"), client.get("/static/app.js"), client.get("/nothing"),
                   client.post("/api/predict", content=b"x", headers={"Content-Type": "text/plain"}),
                   client.get("/api/model", headers={"Host": "evil.example.com"})):
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_a_top_k_of_thousands_of_digits_is_a_4xx_not_a_server_error(client, mnist):  # noqa: F811
    for top_k in ("9" * 5000, "0" * 5000 + "1", "1" * 5):
        answer = client.post(f"/api/predict?top_k={top_k}", content=drawing(mnist.x_test[0]),
                             headers={"Content-Type": "image/png"})
        assert answer.status_code == 400 and "top_k must be a whole number" in answer.json()["error"]
        assert len(answer.text) < 200


def test_a_client_at_an_ipv4_mapped_loopback_address_is_local():
    from softmax_cli.cli.serve import _is_loopback

    assert _is_loopback("::ffff:127.0.0.1") and _is_loopback("::1") and not _is_loopback("::ffff:10.0.0.1")
    assert not _is_loopback("0.0.0.0")


def test_serving_everyone_prints_addresses_to_open_and_answers_by_them(mnist_model_file):  # noqa: F811
    import httpx

    process = start_serve("--model", str(mnist_model_file), "--host", "0.0.0.0", "--port", "0",
                          "--allow-host", "class.example.org")
    try:
        url = first_line(process).split(" at ")[-1].strip()
        listening = first_line(process)
        assert url.startswith("http://127.0.0.1:")  # not http://0.0.0.0:..., which no browser opens
        assert listening.startswith("Listening on 0.0.0.0") and "http://0.0.0.0" not in listening
        port = url.rsplit(":", 1)[1].strip("/")
        for _ in range(100):
            try:
                httpx.get(url, trust_env=False)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        shown = [part.strip(" ,.\n") for part in listening.split(" at ", 1)[1].split(", ")] if " at " in listening else []
        for address in shown:  # each address it prints is one it answers by
            host = address.split("//")[1].rsplit(":", 1)[0]
            assert httpx.get(f"http://127.0.0.1:{port}/api/model", headers={"Host": host},
                             trust_env=False).status_code == 200, host
        for host, status in (("class.example.org", 200), ("evil.example.com", 400)):
            answer = httpx.get(f"http://127.0.0.1:{port}/api/model", headers={"Host": host}, trust_env=False)
            assert answer.status_code == status
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_photos_wait_in_a_short_queue_of_their_own_and_beyond_it_are_told_to_come_back():
    import anyio

    from softmax_cli.serve.app import Lane

    async def hold(lane, done):  # a request: waits for a thread, works until done, gives the thread back
        await lane.wait_for_a_thread()
        try:
            await done.wait()
        finally:
            lane.limiter.release()

    async def scenario():
        photos, drawings, done = Lane(1, queued=2), Lane(2, queued=None), anyio.Event()
        async with anyio.create_task_group() as group:
            for _ in range(3):  # one photo being read, two waiting
                group.start_soon(hold, photos, done)
            for _ in range(5):
                group.start_soon(hold, drawings, done)
            await anyio.sleep(0.05)
            assert photos.waiting == 2 and photos.full()  # a fourth photo would be a 503
            assert drawings.waiting == 3 and not drawings.full()  # drawings are bounded by the connection cap
            done.set()
        assert photos.waiting == 0 and not photos.full()

    anyio.run(scenario)


def test_a_client_that_leaves_mid_upload_costs_one_log_line_not_a_traceback(saved, caplog):  # noqa: F811
    import anyio

    app = create_app(saved)
    scope = {"type": "http", "method": "POST", "path": "/api/predict", "raw_path": b"/api/predict",
             "query_string": b"", "headers": [(b"host", b"localhost"), (b"content-type", b"image/png")],
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1)}
    messages = iter([{"type": "http.request", "body": b"\x89PNG\r\n\x1a\n", "more_body": True},
                     {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    anyio.run(app, scope, receive, send)  # raises nothing
    assert [record.getMessage() for record in caplog.records] == [
        "softmax serve: a client left before its image had arrived"]


def test_an_image_too_large_for_the_server_is_refused_from_its_header_before_decoding(client):
    # (a header alone: decoding it would fail as truncated, so the answer shows the header was all that was read)
    answer = client.post("/api/predict", content=png_claiming(6000, 6000), headers={"Content-Type": "image/png"})
    assert answer.status_code == 413 and "36,000,000 pixels" in answer.json()["error"]
