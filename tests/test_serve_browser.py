"""The drawing page in a real browser: headless Chromium (the system's, driven by Playwright) against a real server."""

import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from softmax_cli.data import check_model_fits, load_dataset
from softmax_cli.predict import predict_image
from softmax_cli.serve.app import create_app
from test_predict import mnist_model_file, saved  # noqa: F401  (fixtures)

CHROMIUM = Path("/usr/bin/chromium")
# Where to keep the screenshot for the README (docs/serve.png): SOFTMAX_SCREENSHOT=docs/serve.png pytest ...
SCREENSHOT = os.environ.get("SOFTMAX_SCREENSHOT")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (Debian's chromium package)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


def serving(app):
    """Yield the address of a real uvicorn server of app, on a free port, running in a thread."""
    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def url(saved):  # noqa: F811
    """The address of a real server of the MNIST model."""
    yield from serving(create_app(saved, model_name="model.npz"))


def open_page(browser, url, **options):
    """Return the page loaded and ready; page.sent collects the bodies it posts to /api/predict."""
    page = browser.new_page(viewport={"width": 1100, "height": 780}, **options)
    page.sent = []
    page.on("request", lambda request: page.sent.append(request.post_data_buffer)
            if request.url.endswith("/api/predict") else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return page


@pytest.fixture
def page(browser, url):
    page = open_page(browser, url, accept_downloads=True)
    yield page
    page.close()


def trace(page, digit: np.ndarray) -> None:
    """Draw the digit on the page's pad with the mouse: one stroke along each run of inked pixels in each row."""
    box = page.locator("#pad").bounding_box()
    cell = box["width"] / digit.shape[1]
    for row, pixels in enumerate(digit >= 128):
        columns = np.flatnonzero(pixels)
        for run in np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if len(columns) else []:
            y = box["y"] + (row + 0.5) * cell
            page.mouse.move(box["x"] + (run[0] + 0.5) * cell, y)
            page.mouse.down()
            page.mouse.move(box["x"] + (run[-1] + 0.5) * cell, y, steps=max(2, len(run)))
            page.mouse.up()


def settled(page) -> None:
    """Wait until the page has the answer for its drawing as it is now."""
    # polled from here: wait_for_function's polling evaluates a string in the page, which its CSP forbids
    deadline = time.monotonic() + 30
    while not page.evaluate("() => !inFlight && !pending && (result !== null || strokes.length === 0)"):
        assert time.monotonic() < deadline, "the page did not settle"
        time.sleep(0.02)


def shown_probabilities(page) -> np.ndarray:
    return np.array(page.eval_on_selector_all("#bars li", "bars => bars.map(b => Number(b.dataset.probability))"))


def seen_pixels(page) -> np.ndarray:
    """Return the page's view of the model's input as gray levels 0..255."""
    rgba = page.evaluate("""() => {
        const canvas = document.getElementById("seen");
        return Array.from(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data);
    }""")
    return np.array(rgba).reshape(28, 28, 4)[..., 0]


def test_a_traced_mnist_digit_is_predicted_as_the_library_predicts_the_image_the_page_sent(
    page, mnist, saved, tmp_path  # noqa: F811
):
    digit, label = mnist.x_test[0], str(mnist.y_test[0])
    trace(page, digit)
    settled(page)
    expected = predict_image(saved, page.sent[-1])  # the last drawing the page sent, as `softmax predict` sees it
    assert expected.label == label  # the tracing is the digit
    assert page.text_content("#predicted") == label
    np.testing.assert_allclose(shown_probabilities(page), expected.probabilities, rtol=1e-6, atol=1e-9)
    top = page.locator("#bars li.top")
    assert top.get_attribute("data-class") == label
    assert float(top.locator(".fill").evaluate("e => parseFloat(e.style.width)")) == pytest.approx(
        100 * expected.probability, rel=1e-4)
    # each bar as drawn: its fill's share of its track (an inline fill ignored its width and every bar was empty)
    drawn = page.eval_on_selector_all("#bars li", """bars => bars.map(b =>
        b.querySelector('.fill').getBoundingClientRect().width / b.querySelector('.track').getBoundingClientRect().width)""")
    np.testing.assert_allclose(drawn, expected.probabilities, atol=0.01)
    assert page.text_content("#entropy") == f"entropy {expected.entropy_bits:.2f} bits"
    np.testing.assert_allclose(seen_pixels(page), np.round(expected.input * 255), atol=1)
    assert page.text_content("#evidence-class") == label
    assert "mnist" in page.text_content("#model-info") and "92.00 %" in page.text_content("#model-info")

    page.click("#bars li[data-class='3']")  # a learner asks: why not a 3?
    assert page.text_content("#evidence-class") == "3" and page.text_content("#template-class") == "3"
    screenshot = page.screenshot(path=SCREENSHOT)
    assert screenshot.startswith(b"\x89PNG")

    page.select_option("#label", label)
    page.click("#add")
    with page.expect_download() as download:
        page.click("#download")
    download.value.save_as(tmp_path / "drawings.npz")
    drawings = load_dataset(tmp_path / "drawings.npz", name=None)  # the user's own data, as evaluate reads it
    check_model_fits(saved, drawings)
    np.testing.assert_array_equal(drawings.x_test[0], np.round(expected.framed * 255))
    assert drawings.y_test.tolist() == [int(label)] and drawings.class_names == saved.class_names
    np.testing.assert_array_equal(drawings.x_train, drawings.x_test)


def test_undo_and_clear(page, mnist):
    trace(page, mnist.x_test[1])
    settled(page)
    strokes = page.evaluate("strokes.length")
    page.click("#undo")
    settled(page)
    assert page.evaluate("strokes.length") == strokes - 1 and page.text_content("#predicted") != "?"
    page.click("#clear")
    settled(page)
    assert page.text_content("#predicted") == "?" and np.isnan(shown_probabilities(page)).all()


def test_a_finger_draws_too(browser, url, saved):  # noqa: F811
    """Touch input (a finger on a tablet or a classroom's touch screen) draws like the mouse."""
    page = open_page(browser, url, has_touch=True)
    box = page.locator("#pad").bounding_box()
    touch = page.context.new_cdp_session(page)
    x = box["x"] + 140
    for i, kind in enumerate(["touchStart", *["touchMove"] * 19, "touchEnd"]):
        points = [] if kind == "touchEnd" else [{"x": x, "y": box["y"] + 40 + 10 * i}]
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})
    settled(page)
    assert page.evaluate("strokes.length") == 1
    assert page.text_content("#predicted") == predict_image(saved, page.sent[-1]).label == "1"
    page.close()


@pytest.fixture(scope="module")
def teaching_url(saved, mnist):  # noqa: F811
    """The address of a real server of the MNIST model that can be taught (its data set is the real MNIST)."""
    from softmax_cli.teach import Teacher

    yield from serving(create_app(saved, model_name="model.npz", teacher=Teacher(saved, lambda: mnist)))


def test_drawings_labelled_and_taught_change_the_prediction_and_reset_restores_it(
    browser, teaching_url, mnist, saved, tmp_path  # noqa: F811
):
    from softmax_cli import store

    page = open_page(browser, teaching_url, accept_downloads=True)
    other = open_page(browser, teaching_url)  # another pupil's page, open before the lesson
    assert page.is_disabled("#teach") and page.is_disabled("#reset") and page.is_disabled("#download-model")
    # Two drawings of a 7 that the person means as 1s (a teacher showing what teaching does), and a 4 as a 4.
    drawings = [(mnist.x_test[0], "1"), (mnist.x_test[17], "1"), (mnist.x_test[4], "4")]
    for digit, label in drawings:
        page.click("#clear")
        trace(page, digit)
        settled(page)
        page.select_option("#label", label)
        page.click("#add")
    before = shown_probabilities(page)  # the last drawing's, by the model as loaded
    page.click("#clear")
    trace(page, mnist.x_test[0])
    settled(page)
    untaught = shown_probabilities(page)
    assert not page.is_disabled("#teach")
    page.click("#teach")
    page.wait_for_selector("body[data-taught=true]", timeout=60_000)
    settled(page)
    status = page.text_content("#teach-status")
    assert status.startswith("Taught 3 drawings in ") and "before" in status and "after (3 folds)" in status
    assert "taught 3 drawings" in page.text_content("#model-info")
    taught = shown_probabilities(page)
    assert taught[1] > untaught[1] + 0.05  # the drawing taught as a 1 is more of a 1 now
    with page.expect_download() as download:
        page.click("#download-model")
    download.value.save_as(tmp_path / "taught.npz")
    model = store.load_model(tmp_path / "taught.npz")
    assert model.metadata["added"]["count"]["1"] == 2 and model.metadata["added"]["count"]["4"] == 1
    np.testing.assert_allclose(taught, predict_image(model, page.sent[-1]).probabilities, rtol=1e-5, atol=1e-7)
    trace(other, mnist.x_test[0])  # the other page is answered by the taught model, and takes its weights
    settled(other)
    assert other.evaluate("model.version") == page.evaluate("model.version") == 1
    assert "taught 3 drawings" in other.text_content("#model-info")
    np.testing.assert_allclose(shown_probabilities(other), predict_image(model, other.sent[-1]).probabilities,
                               rtol=1e-5, atol=1e-7)
    other.close()

    page.click("#reset")
    page.wait_for_selector("body[data-taught=false]")
    settled(page)
    np.testing.assert_allclose(shown_probabilities(page), untaught, rtol=1e-6, atol=1e-9)
    assert page.is_disabled("#download-model") and before.shape == untaught.shape
    page.close()
