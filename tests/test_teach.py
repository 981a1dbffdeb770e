"""Teaching a served model a person's drawings (teach.py, POST /api/learn): the lesson, its honest figures, the
taught model served and downloadable, the reset, and every bad lesson refused in one line while the server serves on.

The fast tests teach a model of scikit-learn's bundled 8x8 digits (no download); one test teaches real MNIST.
"""

import hashlib
import io
import json

import numpy as np
import pytest
from starlette.testclient import TestClient

from softmax_cli import store
from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.data.examples import read_drawings
from softmax_cli.errors import SoftmaxError
from softmax_cli.predict import predict_image
from softmax_cli.run import train_model
from softmax_cli.serve.app import MAX_LESSON, create_app
from softmax_cli.teach import Teacher, _folds
from test_serve import png

DIGITS = tuple("0123456789")
LOCAL = "http://localhost:8000"


def drawings_npz(images: np.ndarray, labels, class_names=DIGITS, **more) -> bytes:
    """Return the .npz the drawing page downloads (and sends to /api/learn) of uint8 images and their labels."""
    buffer = io.BytesIO()
    images, labels = np.asarray(images, np.uint8), np.asarray(labels, np.uint8)
    arrays = {"x_train": images, "y_train": labels, "x_test": images, "y_test": labels,
              "class_names": np.array(class_names), **more}
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits():
    return load_dataset(None, name="digits")


@pytest.fixture(scope="module")
def digits_model_file(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("taught") / "digits.npz"
    train_model(digits, TrainConfig(epochs=20), path)
    return path


@pytest.fixture(scope="module")
def person(digits):
    """A person's 60 drawings: the digits' test images, their strokes thickened (a different pen), uint8 0..255."""
    rng = np.random.default_rng(0)
    rows = rng.choice(len(digits.y_test), 60, replace=False)
    images = digits.x_test[rows].astype(np.float32)
    thick = np.maximum(images, np.roll(images, 1, axis=2))  # one pixel wider strokes
    return np.clip(thick, 0, 255).astype(np.uint8), digits.y_test[rows]


def app_for(path, digits, **options):
    saved = store.load_model(path)
    options.setdefault("teacher", Teacher(saved, lambda: digits))
    return create_app(saved, model_name=path.name, **options)


def test_a_lesson_is_served_measured_downloadable_and_reset(digits_model_file, digits, person):
    on_disk = hashlib.sha256(digits_model_file.read_bytes()).hexdigest()
    images, labels = person
    drawing = png(np.kron(images[0], np.ones((10, 10), np.uint8)))
    with TestClient(app_for(digits_model_file, digits), base_url=LOCAL) as client:
        untaught = client.post("/api/predict", content=drawing, headers={"Content-Type": "image/png"}).json()
        assert client.get("/api/model").json()["taught"] is None
        assert client.get("/api/model").json()["can_teach"] is True
        assert client.get("/api/model.npz").status_code == 404

        answer = client.post("/api/learn", content=drawings_npz(images, labels),
                             headers={"Content-Type": "application/zip"})
        assert answer.status_code == 200, answer.text
        lesson = answer.json()
        assert lesson["examples"] == 60 and lesson["folds"] == 5
        assert lesson["counts"] == {name: int(np.count_nonzero(labels == k)) for k, name in enumerate(DIGITS)}
        assert 0 <= lesson["before"] <= 1 and 0 <= lesson["after"] <= 1
        assert lesson["test_accuracy_before"] == pytest.approx(store.load_model(digits_model_file).metadata[
            "test_accuracy"], abs=1e-6)
        description = client.get("/api/model").json()
        assert description["taught"] == lesson
        assert description["test_accuracy"] == lesson["test_accuracy_after"]

        # the taught model answers from now on, and its file is what the page downloads
        download = client.get("/api/model.npz")
        assert download.status_code == 200
        assert 'filename="digits-taught.npz"' in download.headers["content-disposition"]
        taught = store.model_from_bytes(download.content)
        assert taught.metadata["added"]["count"] == lesson["counts"]
        np.testing.assert_array_equal(np.array(description["W"], np.float32), taught.W.T)
        now = client.post("/api/predict", content=drawing, headers={"Content-Type": "image/png"}).json()
        assert now["probabilities"] == predict_image(taught, drawing).probabilities.tolist()
        assert now["probabilities"] != untaught["probabilities"]

        assert client.post("/api/reset").status_code == 200
        assert client.get("/api/model").json()["taught"] is None
        again = client.post("/api/predict", content=drawing, headers={"Content-Type": "image/png"}).json()
        assert again["probabilities"] == untaught["probabilities"]
        assert client.get("/api/model.npz").status_code == 404
    assert hashlib.sha256(digits_model_file.read_bytes()).hexdigest() == on_disk  # the file is never changed


def test_the_downloaded_model_is_read_by_every_command(tmp_path, digits_model_file, digits, person, capsys):
    from test_cli import run

    images, labels = person
    with TestClient(app_for(digits_model_file, digits), base_url=LOCAL) as client:
        client.post("/api/learn", content=drawings_npz(images, labels), headers={"Content-Type": "application/zip"})
        (tmp_path / "taught.npz").write_bytes(client.get("/api/model.npz").content)
    code, out, err = run(capsys, "info", tmp_path / "taught.npz")
    assert code == 0 and "examples added" in out and "60 examples" in out, err
    code, out, err = run(capsys, "evaluate", "--model", tmp_path / "taught.npz", "--dataset", "digits", "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(
        store.load_model(tmp_path / "taught.npz").metadata["test_accuracy"], abs=1e-9)


def test_after_is_measured_on_drawings_the_scoring_model_was_not_taught(digits_model_file, digits, person,
                                                                         monkeypatch):
    """Each fold's drawings are read by a model taught every drawing but those (and the data set), and "after" is
    how many of them those models read right; the model served is taught them all."""
    import softmax_cli.teach as teach
    from softmax_cli.metrics import loss_and_accuracy
    from softmax_cli.model import features

    images, labels = person
    saved = store.load_model(digits_model_file)
    examples = read_drawings(drawings_npz(images, labels), DIGITS, (8, 8), saved.framing)
    taught_on = []
    go_on = teach._go_on

    def recording(config, W, b, pixels, labels, sample_weight):
        extra = pixels[len(digits.y_train):]  # the drawings' copies, after the data set's images
        taught_on.append({image.tobytes() for image in extra})
        result = go_on(config, W, b, pixels, labels, sample_weight)
        taught_on[-1] = (taught_on[-1], result)
        return result

    monkeypatch.setattr(teach, "_go_on", recording)
    lesson = Teacher(saved, lambda: digits).lesson(examples)
    fold = _folds(examples.labels, teach.FOLDS)
    assert len(taught_on) == teach.FOLDS + 1
    right = 0
    for k, (seen, (W, b)) in enumerate(taught_on[:-1]):
        held = fold == k
        assert not seen & {image.tobytes() for image in examples.pixels[held]}  # none of the drawings it reads
        assert seen == {image.tobytes() for image in examples.pixels[~held]}    # all of the others
        right += loss_and_accuracy(W, b, features(examples.pixels[held]), examples.labels[held])[1] * held.sum()
    assert lesson.after == pytest.approx(right / len(examples.labels))
    assert taught_on[-1][0] == {image.tobytes() for image in examples.pixels}
    np.testing.assert_array_equal(lesson.model.W, taught_on[-1][1][0])


def test_the_pages_drawings_are_read_as_framed_and_others_are_framed(digits_model_file, person):
    images, labels = person
    saved = store.load_model(digits_model_file)
    page = read_drawings(drawings_npz(images, labels, framing=np.array([saved.framing])), DIGITS, (8, 8), "fill")
    np.testing.assert_array_equal(page.pixels, images)  # as the page framed them, not framed again
    other = read_drawings(drawings_npz(images, labels), DIGITS, (8, 8), "fill")
    assert not np.array_equal(other.pixels, images)  # an .npz from elsewhere is framed as predict frames images
    with pytest.raises(SoftmaxError, match="image 1 of x_train holds no digit"):
        read_drawings(drawings_npz(np.stack([images[0], BLANK[0]]), [1, 2], framing=np.array(["fill"])), DIGITS,
                      (8, 8), "fill")


def test_folds_spread_each_class_and_differ_in_size_by_one_at_most():
    labels = np.array([0] * 7 + [1] * 3 + [2] * 11)
    fold = _folds(labels, 5)
    sizes = np.bincount(fold, minlength=5)
    assert sizes.max() - sizes.min() <= 1
    for label in (0, 2):  # a class with at least as many members as folds is in every fold
        assert set(fold[labels == label]) == set(range(5))


def test_one_drawing_is_taught_but_not_measured(digits_model_file, digits, person):
    images, labels = person
    with TestClient(app_for(digits_model_file, digits), base_url=LOCAL) as client:
        lesson = client.post("/api/learn", content=drawings_npz(images[:1], labels[:1]),
                             headers={"Content-Type": "application/zip"}).json()
    assert lesson["examples"] == 1 and lesson["after"] is None and lesson["folds"] == 1


def npz_of(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


BLANK = np.zeros((2, 8, 8), np.uint8)
INK = np.full((2, 8, 8), 0, np.uint8)
INK[:, 2:6, 3:5] = 255


@pytest.mark.parametrize("body, content_type, status, phrase", [
    (b"", "application/zip", 422, "the body is empty"),
    (b"PK\x03\x04 not really", "application/zip", 422, "not an .npz archive"),
    (drawings_npz(INK, [1, 2]), "image/png", 415, "Content-Type application/zip"),
    (npz_of(x_train=INK), "application/zip", 422, "not x_train and y_train"),
    (npz_of(x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, np.uint8)), "application/zip", 422,
     "there are no images"),
    (drawings_npz(np.zeros((2, 28, 28), np.uint8), [1, 2]), "application/zip", 422, "28x28-pixel images"),
    (npz_of(x_train=INK, y_train=np.array([1, 12], np.uint8)), "application/zip", 422, "label 12 is out of range"),
    (drawings_npz(INK, [1, 2], class_names=tuple("abcdefghij")), "application/zip", 422, "are not the model's"),
    (drawings_npz(BLANK, [1, 2]), "application/zip", 422, "holds no digit"),
    (npz_of(x_train=INK, y_train=np.array([1], np.uint8)), "application/zip", 422, "2 images in x_train but 1"),
])
def test_a_bad_lesson_is_one_line_and_the_server_serves_on(digits_model_file, digits, body, content_type, status,
                                                           phrase):
    with TestClient(app_for(digits_model_file, digits), base_url=LOCAL) as client:
        answer = client.post("/api/learn", content=body, headers={"Content-Type": content_type})
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert phrase in error and "\n" not in error and "Traceback" not in error
        assert client.get("/api/model").json()["taught"] is None
        assert client.post("/api/predict", content=png(np.kron(INK[0], np.ones((10, 10), np.uint8))),
                           headers={"Content-Type": "image/png"}).status_code == 200


def test_more_drawings_than_a_lesson_takes_are_refused(digits_model_file, digits):
    images = np.repeat(INK[:1], MAX_LESSON + 1, axis=0)
    with TestClient(app_for(digits_model_file, digits), base_url=LOCAL) as client:
        answer = client.post("/api/learn", content=drawings_npz(images, np.ones(len(images))),
                             headers={"Content-Type": "application/zip"})
    assert answer.status_code == 422 and f"more than the {MAX_LESSON}" in answer.json()["error"]


def test_a_small_body_that_unpacks_to_gigabytes_is_refused_before_it_is_read(digits_model_file, digits):
    buffer = io.BytesIO()  # 300 MB of zeros in a few hundred KB of zip
    np.savez_compressed(buffer, x_train=np.zeros((300_000, 32, 32), np.uint8), y_train=np.zeros(300_000, np.uint8))
    assert len(buffer.getvalue()) < 5 * 2**20
    with TestClient(app_for(digits_model_file, digits), base_url=LOCAL) as client:
        answer = client.post("/api/learn", content=buffer.getvalue(), headers={"Content-Type": "application/zip"})
        assert answer.status_code == 422 and "x_train would take" in answer.json()["error"]
        assert client.get("/api/model").status_code == 200


def test_without_its_training_data_the_model_says_what_to_pass(digits_model_file, digits, tmp_path):
    from softmax_cli.cli.serve import teaching

    saved = store.load_model(digits_model_file)
    own = store.SavedModel(saved.W, saved.b, {**saved.metadata, "dataset": "shapes", "data_path": None})
    options = teaching(own, None)
    assert "--data" in options["teach_note"]
    with TestClient(create_app(own, **options), base_url=LOCAL) as client:
        description = client.get("/api/model").json()
        assert description["can_teach"] is False and "--data" in description["teach_note"]
        answer = client.post("/api/learn", content=drawings_npz(INK, [1, 2]),
                             headers={"Content-Type": "application/zip"})
    assert answer.status_code == 409 and "--data" in answer.json()["error"]

    def unreadable():
        raise SoftmaxError(f"data {tmp_path / 'gone'} does not exist")

    with TestClient(create_app(saved, teacher=Teacher(saved, unreadable)), base_url=LOCAL) as client:
        answer = client.post("/api/learn", content=drawings_npz(INK, [1, 2]),
                             headers={"Content-Type": "application/zip"})
        assert answer.status_code == 409
        assert answer.json()["error"].startswith("the model cannot be taught here: data ")
        assert client.get("/api/model").status_code == 200


def test_data_of_another_data_set_is_refused_at_the_lesson(digits_model_file, mnist):
    saved = store.load_model(digits_model_file)
    with TestClient(create_app(saved, teacher=Teacher(saved, lambda: mnist)), base_url=LOCAL) as client:
        answer = client.post("/api/learn", content=drawings_npz(INK, [1, 2]),
                             headers={"Content-Type": "application/zip"})
    assert answer.status_code == 409 and "cannot be taught here" in answer.json()["error"]


def test_the_model_bytes_are_the_file_save_model_writes(tmp_path, digits_model_file):
    saved = store.load_model(digits_model_file)
    data = store.model_bytes(saved.W, saved.b, saved.metadata)
    again = store.model_from_bytes(data)
    np.testing.assert_array_equal(again.W, saved.W)
    assert again.metadata == {**saved.metadata, "created": again.metadata["created"]}
    with pytest.raises(SoftmaxError, match="refusing to save"):
        store.model_bytes(saved.W * np.inf, saved.b, saved.metadata)


@pytest.mark.slow
def test_mnist_five_of_each_digit_by_other_writers_are_learned(mnist, mnist_path, tmp_path):
    """On real MNIST (deskewed, as the page's best models are): five photos of each digit by writers not in MNIST
    (scikit-learn's digits, enlarged) lift the reading of their other digits well above the untaught model's, and
    the honest figure says so; MNIST's test set stays within a point."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from softmax_cli.images import load_image

    path = tmp_path / "deskew.npz"
    train_model(mnist, TrainConfig(preprocess="deskew"), path)
    saved = store.load_model(path)
    proxy = load_digits()
    rng = np.random.default_rng(0)
    framed = []
    for image in proxy.images:
        buffer = io.BytesIO()  # a photo of dark ink on white paper, enlarged as bench/add.py's are
        paper = Image.fromarray((255 - image * (255 / 16)).astype(np.uint8))
        paper.resize((64, 64), Image.Resampling.BICUBIC).save(buffer, format="PNG")
        framed.append(load_image(buffer.getvalue(), (28, 28), convention="mnist"))
    framed = np.rint(np.array(framed).reshape(-1, 28, 28) * 255).astype(np.uint8)
    taught = np.concatenate([rng.choice(np.flatnonzero(proxy.target == k), 5, replace=False) for k in range(10)])
    others = np.setdiff1d(np.arange(len(proxy.target)), taught)
    lesson = Teacher(saved, lambda: mnist).lesson(
        read_drawings(drawings_npz(framed[taught], proxy.target[taught]), DIGITS, (28, 28), "mnist"))
    from softmax_cli.model import features
    from softmax_cli.preprocess import preprocessed

    rows = features(preprocessed(framed[others], "deskew"))
    before = np.mean((rows @ saved.W + saved.b).argmax(1) == proxy.target[others])
    after = np.mean((rows @ lesson.model.W + lesson.model.b).argmax(1) == proxy.target[others])
    assert after >= before + 0.08, (before, after)
    assert lesson.after > lesson.before
    assert lesson.test_after >= lesson.test_before - 0.01


def test_a_second_lesson_meanwhile_is_a_503_and_drawings_are_answered_during_a_lesson(digits_model_file, digits,
                                                                                       person):
    import threading
    import time

    images, labels = person
    saved = store.load_model(digits_model_file)
    started = threading.Event()

    def slow_data():  # a data set that takes its time to read, as a download would
        started.set()
        time.sleep(1.5)
        return digits

    with TestClient(create_app(saved, teacher=Teacher(saved, slow_data)), base_url=LOCAL) as client:
        first = {}
        lesson = threading.Thread(target=lambda: first.update(answer=client.post(
            "/api/learn", content=drawings_npz(images, labels), headers={"Content-Type": "application/zip"})))
        lesson.start()
        assert started.wait(10)
        second = client.post("/api/learn", content=drawings_npz(images, labels),
                             headers={"Content-Type": "application/zip"})
        assert second.status_code == 503 and "being taught already" in second.json()["error"]
        asked = time.monotonic()
        drawing = client.post("/api/predict", content=png(np.kron(images[0], np.ones((10, 10), np.uint8))),
                              headers={"Content-Type": "image/png"})
        assert drawing.status_code == 200 and time.monotonic() - asked < 1.0  # not held up by the lesson
        lesson.join(30)
        assert first["answer"].status_code == 200
