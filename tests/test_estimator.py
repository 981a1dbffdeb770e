"""SoftmaxRegression: scikit-learn's own estimator checks, its place in pipelines and grid searches, and that it
learns exactly what the CLI's training loop learns."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from softmax_cli import SoftmaxRegression, model, run
from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.model import features, loss_and_grad
from softmax_cli.preprocess import deskew
from softmax_cli.store import load_model
from softmax_cli.train import Trainer, fit


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits as (x_train, x_test, y_train, y_test), pixels 0..16."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


# scikit-learn's checks fit unscaled features (around 100): the default lr="auto" standardises them and takes its
# step from their curvature; lr 1e-4 (the features as given) suits such data too.
# As scikit-learn declares for SGDClassifier: mini-batches drawn in a shuffled order make weighting a row k times
# differ from repeating it (a statistical, not an exact, equivalence); full batches: the sample_weight test below.
SHUFFLED_BATCHES = "sample_weight is not equivalent to removing/repeating samples."


@parametrize_with_checks([
    SoftmaxRegression(),
    SoftmaxRegression(lr=1e-4),
    SoftmaxRegression(loss="mse", batch_size="full", schedule="cosine", l2=0.01, val_split=0.2, patience=1, epochs=20),
], expected_failed_checks=lambda estimator: {
    "check_sample_weight_equivalence_on_dense_data": SHUFFLED_BATCHES,
    "check_sample_weight_equivalence_on_sparse_data": SHUFFLED_BATCHES,
})
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_hyperparameters_are_the_cli_settings_with_their_defaults_but_lr_auto():
    assert SoftmaxRegression().get_params() == {**TrainConfig().to_dict(), "lr": "auto"}


def test_the_weights_are_those_of_the_cli_training_loop(digits):
    x_train, _, y_train, _ = digits
    estimator = SoftmaxRegression(lr=0.5, epochs=3, l2=1e-3).fit(x_train / 16, y_train)

    result = fit(Trainer(TrainConfig(epochs=3, l2=1e-3), 64, 10), x_train / 16, y_train)
    assert_array_equal(estimator.coef_, result.W.T)
    assert_array_equal(estimator.intercept_, result.b)
    assert estimator.n_iter_ == 3 and [epoch["loss"] for epoch in estimator.history_] == [
        epoch["loss"] for epoch in result.history
    ]


@pytest.mark.parametrize("settings", [{"lr": 0.5}, {"val_split": 0.2, "patience": 2, "epochs": 100, "average": 0, "lr": 1}])
def test_the_same_model_as_softmax_train(tmp_path, settings):
    """`softmax train` folds the 1/255 into the weights; fitting pixels / 255 gives the same model up to rounding.

    With early stopping, also the same split, the same best epoch and its weights.
    """
    digits = load_dataset(name="digits")
    trained = run.train_model(digits, TrainConfig(**settings), tmp_path / "digits.npz")
    saved = load_model(tmp_path / "digits.npz")
    estimator = SoftmaxRegression(**settings).fit(features(digits.x_train), digits.y_train)
    assert_allclose(estimator.coef_, saved.W.T, atol=1e-5)
    assert_allclose(estimator.intercept_, saved.b, atol=1e-5)
    assert estimator.n_iter_ == trained.fit.epochs_run and estimator.best_epoch_ == trained.fit.best_epoch
    if len(settings) > 1:
        assert estimator.best_epoch_ < estimator.n_iter_  # it stopped early and kept an earlier epoch


def test_pipeline_and_grid_search_on_digits(digits):
    x_train, x_test, y_train, y_test = digits
    pipeline = make_pipeline(StandardScaler(), SoftmaxRegression())
    grid = {"softmaxregression__lr": [0.03, 0.3], "softmaxregression__l2": [0.0, 1e-3]}
    search = GridSearchCV(pipeline, grid, cv=3).fit(x_train, y_train)

    assert search.best_score_ > 0.93
    assert search.score(x_test, y_test) > 0.93
    assert pipeline.fit(x_train, y_train).score(x_test, y_test) > 0.93


def test_probabilities_and_scores_agree(digits):
    x_train, x_test, y_train, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    estimator = SoftmaxRegression().fit(x_train / 16, names[y_train])
    probabilities = estimator.predict_proba(x_test / 16)

    assert_array_equal(estimator.classes_, np.sort(names))
    assert estimator.coef_.shape == (10, 64) and estimator.intercept_.shape == (10,)
    assert probabilities.shape == (len(x_test), 10)
    assert_allclose(probabilities.sum(axis=1), 1)
    assert_allclose(np.exp(estimator.predict_log_proba(x_test / 16)), probabilities)
    assert_array_equal(estimator.predict(x_test / 16), estimator.classes_[probabilities.argmax(axis=1)])
    assert_array_equal(estimator.decision_function(x_test / 16).argmax(axis=1), probabilities.argmax(axis=1))


def test_two_classes_have_two_probability_columns_and_one_margin(digits):
    x_train, x_test, y_train, _ = digits
    ones_and_zeros = y_train < 2
    estimator = SoftmaxRegression().fit(x_train[ones_and_zeros] / 16, y_train[ones_and_zeros] == 1)
    margins = estimator.decision_function(x_test / 16)

    assert estimator.coef_.shape == (2, 64) and margins.shape == (len(x_test),)
    assert_array_equal(estimator.predict(x_test / 16), margins > 0)
    assert_allclose(estimator.predict_proba(x_test / 16)[:, 1], 1 / (1 + np.exp(-margins)))


def test_early_stopping_with_a_validation_split_keeps_the_best_epoch(digits):
    x_train, _, y_train, _ = digits
    estimator = SoftmaxRegression(val_split=0.2, patience=2, epochs=100, schedule="constant", average=0).fit(
        x_train / 16, y_train)

    assert 2 < estimator.n_iter_ < 100
    val_losses = [epoch["val_loss"] for epoch in estimator.history_]
    assert min(val_losses[-2:]) >= min(val_losses[:-2])  # two epochs in a row without a better validation loss
    assert estimator.best_epoch_ == 1 + int(np.argmin(val_losses)) == estimator.n_iter_ - 2


def test_partial_fit_over_the_same_data_is_fit_at_a_constant_rate_without_averaging(digits):
    x_train, _, y_train, _ = digits
    estimator = SoftmaxRegression(lr=0.5)
    for _ in range(3):
        estimator.partial_fit(x_train / 16, y_train, classes=range(10))

    same = SoftmaxRegression(lr=0.5, epochs=3, schedule="constant", average=0).fit(x_train / 16, y_train)
    assert_array_equal(estimator.coef_, same.coef_)
    assert estimator.n_iter_ == 3


def test_partial_fit_takes_one_plain_gradient_step_per_sample_without_momentum(digits):
    """Chunks of any size, one after another: every step is W -= lr * gradient, never an average of weights."""
    x_train, _, y_train, _ = digits
    X = x_train / 16
    estimator = SoftmaxRegression(momentum=0, lr=0.5).partial_fit(X[:300], y_train[:300], classes=range(10))
    W, b = estimator.coef_.T.astype(np.float64), estimator.intercept_.astype(np.float64)
    for i in range(300, 303):
        estimator.partial_fit(X[i : i + 1], y_train[i : i + 1])
        _, dW, db = loss_and_grad(W, b, X[i : i + 1], np.eye(10)[y_train[i : i + 1]])
        W, b = W - 0.5 * dW, b - 0.5 * db
    assert_allclose(estimator.coef_.T, W, atol=1e-5)
    assert_allclose(estimator.intercept_, b, atol=1e-5)


def test_partial_fit_after_fit_goes_on_from_its_coefficients(digits):
    x_train, x_test, y_train, y_test = digits
    estimator = SoftmaxRegression().fit(x_train / 16, y_train)
    before = estimator.score(x_test / 16, y_test)
    estimator.partial_fit(x_train / 16, y_train)
    assert estimator.n_iter_ == 1
    assert estimator.score(x_test / 16, y_test) > before - 0.02 > 0.9


def test_partial_fit_needs_every_class_on_its_first_call(digits):
    x_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        SoftmaxRegression().partial_fit(x_train, y_train)
    estimator = SoftmaxRegression().partial_fit(x_train[:10] / 16, y_train[:10], classes=range(10))
    with pytest.raises(ValueError, match="not among the classes"):
        estimator.partial_fit(x_train[:10] / 16, y_train[:10] + 10)
    with pytest.raises(ValueError, match="differs from the classes"):
        estimator.partial_fit(x_train[:10] / 16, y_train[:10], classes=range(11))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"lr": 0}, r"^lr must be a number greater than 0 and at most 1e\+06, got 0$"),
        ({"batch_size": 1.5}, "^batch_size must be a whole number at least 1 and at most 10000000, or 'full', got 1.5$"),
        ({"batch_size": 0}, "^batch_size must be a whole number at least 1 .*, got 0$"),
        ({"epochs": 2.5}, "^epochs must be a whole number at least 1 and at most 100000, got 2.5$"),
        ({"epochs": 10**400}, "^epochs must be a whole number"),
        ({"seed": -1}, "^seed must be a whole number at least 0"),
        ({"schedule": "step"}, "^schedule must be one of linear, cosine, constant, got 'step'$"),
        ({"preprocess": "blur"}, "^preprocess must be one of none, deskew, got 'blur'$"),
        ({"patience": 2}, "^patience needs a validation split"),
        ({"val_split": 0.0001}, "leaves 1347 for training and 0 for validation"),
        ({"lr": 1e5}, "^training diverged in epoch 1 .*: try a smaller lr than 100000$"),
    ],
)
def test_bad_settings_are_value_errors_that_name_the_parameter(digits, settings, message):
    """Checked by the settings table the CLI uses, once, in fit, and named as a Python user passes them."""
    x_train, _, y_train, _ = digits
    estimator = SoftmaxRegression(**settings)
    assert estimator.get_params()[next(iter(settings))] == next(iter(settings.values()))  # stored untouched
    with pytest.raises(ValueError, match=message) as refused:
        estimator.fit(x_train, y_train)
    assert "--" not in str(refused.value)  # never a command-line flag


def test_the_whole_training_set_in_every_step_is_full(digits):
    x_train, _, y_train, _ = digits
    estimator = SoftmaxRegression(lr=0.5, batch_size="full", epochs=3).fit(x_train / 16, y_train)
    result = fit(Trainer(TrainConfig(batch_size="full", epochs=3), 64, 10), x_train / 16, y_train)
    assert_array_equal(estimator.coef_, result.W.T)
    assert estimator.get_params()["batch_size"] == "full"


def test_deskew_is_applied_in_fit_and_in_every_prediction(digits):
    x_train, x_test, y_train, y_test = digits
    deskewed = SoftmaxRegression(preprocess="deskew").fit(x_train / 16, y_train)
    raw = SoftmaxRegression().fit(x_train / 16, y_train)
    straightened = features(deskew((x_test / 16).reshape(-1, 8, 8)))
    assert not np.allclose(straightened, x_test / 16, atol=0.01)  # deskewing changes these images
    assert_allclose(deskewed.predict_proba(x_test / 16),
                    model.predict_proba(deskewed.coef_.T, deskewed.intercept_, straightened), rtol=1e-6)
    trained_on = model.features(deskew((x_train / 16).reshape(-1, 8, 8)))
    assert_array_equal(deskewed.coef_, SoftmaxRegression().fit(trained_on, y_train).coef_)
    assert deskewed.score(x_test / 16, y_test) > raw.score(x_test / 16, y_test) - 0.02 > 0.9
    before = deskewed.predict_proba(x_test / 16)
    deskewed.set_params(preprocess="none")  # takes effect at the next fit, as every parameter does
    assert_array_equal(deskewed.predict_proba(x_test / 16), before)


def test_deskew_needs_square_images(digits):
    x_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="preprocess='deskew' takes square images .* X's 63 features are not"):
        SoftmaxRegression(preprocess="deskew").fit(x_train[:, :63] / 16, y_train)


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits", "digits*1e4", "iris+1000"])
def test_the_defaults_score_within_a_few_points_of_logistic_regression(name):
    """No tuning: the default lr='auto' standardises, steps by the curvature and takes enough steps (issue 23)."""
    loaders = {"iris": load_iris, "wine": load_wine, "breast_cancer": load_breast_cancer, "digits": load_digits}
    X, y = loaders[name.split("*")[0].split("+")[0]](return_X_y=True)
    X = X * 1e4 if name.endswith("1e4") else X + np.eye(X.shape[1])[0] * 1000 if name.endswith("1000") else X
    a, b, ya, yb = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # lbfgs on unscaled wine and breast_cancer
        reference = LogisticRegression(max_iter=1000).fit(a, ya).score(b, yb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning of our own
        ours = SoftmaxRegression().fit(a, ya)
    assert ours.score(b, yb) >= reference - 0.03
    assert_allclose(ours.predict_proba(b).sum(axis=1), 1)


def test_cross_validated_iris_at_the_defaults():
    assert cross_val_score(SoftmaxRegression(), *load_iris(return_X_y=True), cv=5).mean() >= 0.95


def test_a_small_set_gets_its_minimum_steps_in_several_batches_an_epoch():
    """iris's 150 rows would be two batches of 120, each epoch a call of the training loop for two steps: the auto
    fit takes 4 batches of 38 an epoch and 63 epochs (250 steps, scaling.MIN_STEPS), where 1000 steps of 2 a call
    took five times LogisticRegression's fit time for the same accuracy (bench/any_data.py)."""
    import softmax_cli.scaling as scaling

    X, y = load_iris(return_X_y=True)
    model = SoftmaxRegression().fit(X, y)
    assert model.n_iter_ == -(-scaling.MIN_STEPS // scaling.MIN_BATCHES) == 63
    assert model.score(X, y) >= 0.97
    digits = load_digits(return_X_y=True)  # 1,797 rows, 15 batches: its 17 epochs make 250 steps and more
    assert SoftmaxRegression().fit(*digits).n_iter_ == 17


def test_a_fit_no_better_than_chance_warns():
    X, y = load_iris(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="no better than always predicting the commonest class"):
        SoftmaxRegression(lr=1e-9, epochs=1).fit(X, y)


def test_a_divergent_fit_is_still_an_error():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="diverg"):
        SoftmaxRegression(lr=1e5, epochs=5).fit(X * 100, y)


@pytest.mark.parametrize("sparse", ["csr", "csc"])
def test_sparse_features_give_the_model_of_the_dense_ones(digits, sparse):
    from scipy import sparse as sp

    x_train, x_test, y_train, _ = digits
    dense = SoftmaxRegression().fit(x_train, y_train)
    compressed = SoftmaxRegression().fit(getattr(sp, f"{sparse}_matrix")(x_train), y_train)
    # sparse features are scaled but not centred (centring would fill them): a different but equally good model
    assert abs(compressed.score(x_test, digits[3]) - dense.score(x_test, digits[3])) <= 0.02
    assert_allclose(compressed.predict_proba(sp.csr_matrix(x_test)), compressed.predict_proba(x_test), atol=1e-6)
    unscaled = SoftmaxRegression(lr=0.05, epochs=3).fit(getattr(sp, f"{sparse}_matrix")(x_train / 16), y_train)
    assert_allclose(unscaled.coef_, SoftmaxRegression(lr=0.05, epochs=3).fit(x_train / 16, y_train).coef_, atol=1e-5)


def test_sample_weights_of_one_are_none_and_integers_repeat_rows():
    X, y = load_iris(return_X_y=True)
    plain = SoftmaxRegression(lr=0.05, epochs=200, batch_size="full").fit(X, y)
    ones = SoftmaxRegression(lr=0.05, epochs=200, batch_size="full").fit(X, y, sample_weight=np.ones(len(y)))
    assert_allclose(ones.coef_, plain.coef_, atol=1e-6)
    counts = np.random.default_rng(0).integers(0, 3, len(y))
    counts[:3] = 1
    weighted = SoftmaxRegression(lr=0.05, epochs=200, batch_size="full").fit(X, y, sample_weight=counts)
    repeated = SoftmaxRegression(lr=0.05, epochs=200, batch_size="full").fit(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-3, atol=1e-3)


def test_importing_the_package_does_not_import_scikit_learn():
    """`softmax --help` must stay fast: scikit-learn loads only when SoftmaxRegression is asked for."""
    code = "import sys, softmax_cli, softmax_cli.run; assert 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert SoftmaxRegression.__module__ == "softmax_cli.estimator"
    with pytest.raises(AttributeError, match="has no attribute 'SoftmaxRegresion'"):
        __import__("softmax_cli").SoftmaxRegresion


@pytest.mark.slow
def test_real_mnist_scores_at_least_92_percent_and_deskewed_94_8(mnist):
    x_train, x_test = features(mnist.x_train), features(mnist.x_test)
    estimator = SoftmaxRegression().fit(x_train, mnist.y_train)
    assert estimator.score(x_test, mnist.y_test) >= 0.92
    # issue 11's target for deskewing with the CLI's defaults (lr 0.5 on pixels / 255); lr="auto" reaches 0.9445
    deskewed = SoftmaxRegression(lr=0.5, preprocess="deskew").fit(x_train, mnist.y_train)
    assert deskewed.score(x_test, mnist.y_test) >= 0.948


def test_partial_fit_takes_sample_weights_through_the_training_loop():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    plain = SoftmaxRegression(lr=0.5).partial_fit(X, y, classes=np.arange(10))
    ones = SoftmaxRegression(lr=0.5).partial_fit(X, y, classes=np.arange(10), sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(plain.coef_, ones.coef_)
    weights = np.ones(len(y))
    weights[:100] = 0
    changed = X.copy()
    changed[:100] = np.random.default_rng(0).random((100, X.shape[1]))  # rows weighing 0: their pixels change nothing
    a = SoftmaxRegression(lr=0.5).partial_fit(X, y, classes=np.arange(10), sample_weight=weights)
    b = SoftmaxRegression(lr=0.5).partial_fit(changed, y, classes=np.arange(10), sample_weight=weights)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.array_equal(a.coef_, plain.coef_)
