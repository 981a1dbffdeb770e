"""SoftmaxRegression: the model `softmax train` learns, as a scikit-learn classifier for any features and classes.

It trains through the same pipeline as `softmax train` (run.learn: the validation split, then the training loop)
and predicts with its own math (softmax_cli.model); this module only translates between scikit-learn's
conventions and theirs: any class labels <-> indices 0..k-1, coef_ (classes, features) <-> W (features, classes),
a bad hyperparameter <-> ValueError. Features are used as given: for images, pass pixels / 255 (floats in [0, 1],
the input every form of the model takes), or put a StandardScaler in front.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import model, run, scaling, train
from .config import TrainConfig
from .errors import SoftmaxError
from .preprocess import preprocessed

FEATURE_TYPES = [np.float64, np.float32]  # float32 stays float32; anything else becomes float64


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic (softmax) regression trained by mini-batch gradient descent, as `softmax train` does.

    The parameters are the settings of `softmax train` (softmax_cli.config.SETTINGS), with its defaults, stored
    as given and checked by fit; batch_size="full" takes the whole training set in every step. val_split and
    patience give early stopping: that fraction of the training set is held out, training stops after
    `patience` epochs without a better validation loss, and the best epoch's weights are kept, as in the CLI.
    preprocess="deskew" straightens each sample's slant first, in fit and in every prediction: each row of X must
    then be a square image, flattened row by row (MNIST's 784 = 28 x 28 pixels / 255).

    partial_fit trains one epoch over the samples it is given, at the constant rate lr, without averaging and
    without a validation split (the schedule, the averaging and early stopping need to know how long training
    will be, which partial_fit cannot); momentum carries over from call to call. After fit, partial_fit goes on
    from fit's coefficients.

    Attributes: coef_ (classes, features), intercept_ (classes,), classes_, n_features_in_ (and feature_names_in_
    when X has column names), n_iter_ (epochs run; for partial_fit, since the first call), best_epoch_ (the epoch
    whose weights were kept by early stopping, else None), history_ (the per-epoch training loss and accuracy,
    and validation loss and accuracy with val_split).
    """

    def __init__(
        self,
        lr="auto",
        epochs=TrainConfig.epochs,
        batch_size=TrainConfig.batch_size,
        momentum=TrainConfig.momentum,
        schedule=TrainConfig.schedule,
        average=TrainConfig.average,
        l2=TrainConfig.l2,
        loss=TrainConfig.loss,
        preprocess=TrainConfig.preprocess,
        seed=TrainConfig.seed,
        val_split=TrainConfig.val_split,
        patience=TrainConfig.patience,
    ):
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.momentum = momentum
        self.schedule = schedule
        self.average = average
        self.l2 = l2
        self.loss = loss
        self.preprocess = preprocess
        self.seed = seed
        self.val_split = val_split
        self.patience = patience

    def fit(self, X, y, sample_weight=None):
        """Return self, trained on features X (n_samples, n_features; dense, or scipy.sparse CSR/CSC) and class
        labels y (n_samples,), each sample counting sample_weight times (default: once).

        With lr="auto" (the default) fit standardises the features, takes its step size from their curvature and
        makes at least scaling.MIN_STEPS gradient steps, in scaling.MIN_BATCHES batches an epoch or more (see
        softmax_cli.scaling); coef_ and intercept_ are then
        folded back onto the raw features. A number for lr means what it says: the features as given, epochs as
        given, as `softmax train` does.
        """
        X, y = validate_data(self, X, y, dtype=FEATURE_TYPES, accept_sparse=("csr", "csc"))
        check_classification_targets(y)
        if train.is_sparse(X):  # the training loop reads compressed rows; its validation split takes dense ones
            X = X.toarray() if self.val_split else X.tocsr()
        self.classes_, labels = np.unique(y, return_inverse=True)
        auto = isinstance(self.lr, str)
        if auto and self.lr != "auto":
            raise ValueError(f"lr must be a positive number or 'auto', not {self.lr!r}")
        config = self._config(lr=0.5) if auto else self._config()
        self._preprocess = config.preprocess  # what predictions do to X, whatever set_params does before a refit
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if sample_weight is not None and not np.any(sample_weight != 0):
            raise ValueError("sample_weight: every weight is zero, so there is nothing to learn from")
        with value_errors():
            weights = train.checked_weights(sample_weight, len(labels))
        features = self._features(X)
        scaler = None
        if auto:
            scaler = scaling.Standardiser.fitted(features, weights)
            features = scaler.transform(features)
            n_train = len(labels) - int(round(len(labels) * config.val_split)) if config.val_split else len(labels)
            batch_size = scaling.batch_size_for(config.batch_size, n_train)
            config = config.replace(lr=scaling.step_size(features, config.momentum), batch_size=batch_size,
                                    epochs=scaling.epochs_for(config.epochs, n_train, batch_size))
        with value_errors():
            _, result = run.learn(config, features, labels, len(self.classes_), sample_weight=weights)
        self._learned(result, scaler)
        self._partial_run = None  # a later partial_fit starts from these coefficients
        self._warn_unless_converged(result, X, labels, weights)
        return self

    def _warn_unless_converged(self, result, X, labels, weights) -> None:
        """Warn (ConvergenceWarning) when the fit ends no better than chance on its own training data, or its
        training loss was still falling fast in the last epoch."""
        predicted = self.predict(X)
        hits = (predicted == self.classes_[labels]).astype(np.float64)
        w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
        accuracy = float(hits @ w / w.sum())
        chance = float(np.bincount(labels, weights=w).max() / w.sum())
        if len(self.classes_) > 1 and accuracy <= chance:
            warnings.warn(f"SoftmaxRegression's training accuracy ({accuracy:.3f}) is no better than always "
                          f"predicting the commonest class ({chance:.3f}): the fit has not converged; raise epochs, "
                          "or use lr='auto'", ConvergenceWarning, stacklevel=3)
            return
        losses = [epoch["loss"] for epoch in result.history]
        if len(losses) >= 2 and losses[-2] - losses[-1] > scaling.CONVERGED_DROP * max(abs(losses[-1]), 1e-12):
            warnings.warn(f"SoftmaxRegression's training loss fell {losses[-2]:.4g} -> {losses[-1]:.4g} in its last "
                          "epoch: the fit has not converged; raise epochs", ConvergenceWarning, stacklevel=3)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Return self after one more epoch over (X, y), each sample counting sample_weight times (default: once);
        the first call needs classes, every label y may hold."""
        first_call = not hasattr(self, "classes_")
        if first_call and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit: all the labels y can hold")
        known = np.unique(classes) if classes is not None else self.classes_
        if not first_call and not np.array_equal(known, self.classes_):
            raise ValueError(f"classes={known!r} differs from the classes of the earlier calls, {self.classes_!r}")
        X, y = validate_data(self, X, y, dtype=FEATURE_TYPES, reset=first_call, accept_sparse=("csr", "csc"))
        check_classification_targets(y)
        unknown = np.setdiff1d(y, known)
        if unknown.size:
            raise ValueError(f"y holds labels {unknown!r} that are not among the classes {known!r}")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        with value_errors():
            weights = train.checked_weights(sample_weight, len(y))
        trainer = getattr(self, "_partial_run", None)
        if trainer is None:
            self._preprocess = self.preprocess
            config = self._config(schedule="constant", average=0.0, val_split=0.0, patience=0,
                                  **({"lr": scaling.step_size(self._features(X), TrainConfig.momentum)}
                                     if isinstance(self.lr, str) else {}))
            self._preprocess = config.preprocess
            trainer = train.Trainer(config, self.n_features_in_, len(known))
            if not first_call:  # after fit; float features have scale 1: the trainer's weights are (coef_ | intercept_)
                trainer.weights[:] = np.column_stack([self.coef_, self.intercept_])
        trainer.config = trainer.config.replace(epochs=trainer.epoch + 1)
        with value_errors():
            _, result = run.learn(trainer.config, self._features(X), np.searchsorted(known, y), len(known), trainer,
                                  sample_weight=weights)
        self._learned(result)
        self.classes_, self._partial_run = known, trainer
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # fit and the predictions take scipy.sparse CSR/CSC features
        return tags

    def _config(self, **changes) -> TrainConfig:
        """Return the hyperparameters as a TrainConfig, checked by the settings table; a bad one is a ValueError."""
        with value_errors():
            return TrainConfig(**{**self.get_params(), **changes})

    def _features(self, X: np.ndarray) -> np.ndarray:
        """Return the features the weights apply to: X itself, or X's rows deskewed as square images."""
        if self._preprocess == "none":
            return X
        side = math.isqrt(X.shape[1])
        if side * side != X.shape[1]:
            raise ValueError(f"preprocess={self._preprocess!r} takes square images flattened row by row; "
                             f"X's {X.shape[1]} features are not the pixels of one")
        return model.features(preprocessed(X.reshape(len(X), side, side), self._preprocess))

    def _learned(self, result, scaler=None) -> None:
        """Keep what a training run learned, in scikit-learn's names (on the raw features, where fit scaled them)."""
        W, b = (result.W, result.b) if scaler is None else scaler.fold(result.W, result.b)
        self.coef_ = W.T
        self.intercept_ = b
        self.n_iter_ = result.epochs_run
        self.best_epoch_ = result.best_epoch
        self.history_ = list(result.history)

    def _logits(self, X) -> np.ndarray:
        """Return the class scores X @ coef_.T + intercept_, one row per sample."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=FEATURE_TYPES, reset=False, accept_sparse=("csr", "csc"))
        return model.logits(self.coef_.T, self.intercept_, self._features(X))

    def decision_function(self, X) -> np.ndarray:
        """Return the class scores (n_samples, n_classes); with two classes, the margin of classes_[1] (n_samples,)."""
        scores = self._logits(X)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict(self, X) -> np.ndarray:
        """Return the likeliest class of each sample."""
        scores = self._logits(X)  # first: it checks that the model is fitted, before classes_ is read
        return self.classes_[scores.argmax(axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Return the probability of each class (columns in the order of classes_) for each sample."""
        return model.softmax(self._logits(X))

    def predict_log_proba(self, X) -> np.ndarray:
        """Return the log-probability of each class for each sample, exact even where the probability underflows."""
        return model.log_softmax(self._logits(X))


@contextlib.contextmanager
def value_errors():
    """Raise the library's errors (a bad setting, too little data, divergence) as ValueError, as scikit-learn does.

    The message names a setting as the Python user passes it: "lr", never the command line's "--lr".
    """
    try:
        yield
    except SoftmaxError as e:
        raise ValueError(str(e)) from None
