"""SoftmaxRegression: the model `softmax train` learns, as a scikit-learn classifier for any features and classes.

It trains with the CLI's own loop (softmax_cli.train) and predicts with its own math (softmax_cli.model); this
module only translates between scikit-learn's conventions and theirs: any class labels <-> indices 0..k-1,
coef_ (classes, features) <-> W (features, classes). Features are used as given (the CLI's 1/255 pixel scale
is 1 here): pass pixels / 255, or put a StandardScaler in front.
"""

from __future__ import annotations

import contextlib

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import model, train
from .config import TrainConfig
from .errors import SoftmaxError

FEATURE_TYPES = [np.float64, np.float32]  # float32 stays float32; anything else becomes float64


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic (softmax) regression trained by mini-batch gradient descent, as `softmax train` does.

    The parameters are the settings of `softmax train` (softmax_cli.config.TrainConfig), with its defaults.
    val_split and patience give early stopping: that fraction of the training set is held out and training stops
    after `patience` epochs without a better validation loss (the last weights are kept, as in the CLI).

    partial_fit trains one epoch over the samples it is given, at the constant rate lr, without averaging and
    without a validation split (the schedule, the averaging and early stopping need to know how long training
    will be, which partial_fit cannot); momentum carries over from call to call. After fit, partial_fit goes on
    from fit's coefficients.

    Attributes: coef_ (classes, features), intercept_ (classes,), classes_, n_features_in_ (and feature_names_in_
    when X has column names), n_iter_ (epochs run; for partial_fit, since the first call), history_ (the
    per-epoch training loss and accuracy, and validation loss and accuracy with val_split).
    """

    def __init__(
        self,
        lr=TrainConfig.lr,
        epochs=TrainConfig.epochs,
        batch_size=TrainConfig.batch_size,
        momentum=TrainConfig.momentum,
        schedule=TrainConfig.schedule,
        average=TrainConfig.average,
        l2=TrainConfig.l2,
        loss=TrainConfig.loss,
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
        self.seed = seed
        self.val_split = val_split
        self.patience = patience

    def fit(self, X, y):
        """Return self, trained on features X (n_samples, n_features) and class labels y (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=FEATURE_TYPES)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        with value_errors():
            config = TrainConfig(**self.get_params())
            validation = None
            if config.val_split:
                X, labels, *validation = train.split_validation(X, labels, config.val_split, config.seed)
            trainer = train.Trainer(config, self.n_features_in_, len(self.classes_), scale=1.0)
            self._learned(train.fit(trainer, X, labels, validation=validation))
        self._partial_run = None  # a later partial_fit starts from these coefficients
        return self

    def partial_fit(self, X, y, classes=None):
        """Return self after one more epoch over (X, y); the first call needs classes, every label y may hold."""
        first_call = not hasattr(self, "classes_")
        if first_call and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit: all the labels y can hold")
        known = np.unique(classes) if classes is not None else self.classes_
        if not first_call and not np.array_equal(known, self.classes_):
            raise ValueError(f"classes={known!r} differs from the classes of the earlier calls, {self.classes_!r}")
        X, y = validate_data(self, X, y, dtype=FEATURE_TYPES, reset=first_call)
        check_classification_targets(y)
        unknown = np.setdiff1d(y, known)
        if unknown.size:
            raise ValueError(f"y holds labels {unknown!r} that are not among the classes {known!r}")
        trainer = getattr(self, "_partial_run", None)
        with value_errors():
            if trainer is None:
                config = TrainConfig(**self.get_params()).replace(schedule="constant", average=0.0)
                trainer = train.Trainer(config, self.n_features_in_, len(known), scale=1.0)
                if not first_call:  # after fit; with scale 1 the trainer's weights are (coef_ | intercept_)
                    trainer.weights[:] = np.column_stack([self.coef_, self.intercept_])
            trainer.config = trainer.config.replace(epochs=trainer.epoch + 1)
            self._learned(train.fit(trainer, X, np.searchsorted(known, y)))
        self.classes_, self._partial_run = known, trainer
        return self

    def _learned(self, result) -> None:
        """Keep what a training run learned, in scikit-learn's names."""
        self.coef_ = result.W.T
        self.intercept_ = result.b
        self.n_iter_ = result.epochs_run
        self.history_ = list(result.history)

    def _logits(self, X) -> np.ndarray:
        """Return the class scores X @ coef_.T + intercept_, one row per sample."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=FEATURE_TYPES, reset=False)
        return model.logits(self.coef_.T, self.intercept_, X)

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
    """Raise the library's errors (a bad setting, too little data, divergence) as ValueError, as scikit-learn does."""
    try:
        yield
    except SoftmaxError as e:
        raise ValueError(str(e)) from None
