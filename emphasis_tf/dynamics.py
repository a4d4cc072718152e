"""A Keras callback that records per-example training dynamics during ``model.fit``."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

import emphasis

__all__ = ["TrainingDynamicsCallback"]


class TrainingDynamicsCallback(keras.callbacks.Callback):
    """Feed :class:`emphasis.TrainingDynamics` with the model's outputs on the training set.

    At the end of every ``every``-th epoch the callback predicts the training inputs
    ``x`` (in order, with ``model.predict``) and adds one observation per example with
    its training label. The compiled training step is left untouched (``jit_compile``
    and distribution strategies work as without it); the price is one inference pass
    over ``x`` per recorded epoch. The margin is then the one of the model at the end of
    each epoch (the area under the margin of Pleiss et al. averages it over epochs).

    Args:
        x: the training inputs, in the order of ``labels`` (anything ``model.predict``
            takes that keeps the order: arrays, a dict of arrays; not a shuffled dataset).
        labels: (N,) integer training labels (the noisy ones the model is fitted to).
        from_logits: whether the model outputs logits (else probabilities, whose log is
            used).
        every: record every ``every`` epochs.
        batch_size: passed to ``model.predict``.

    After ``fit``, ``callback.dynamics`` is the :class:`emphasis.TrainingDynamics`:

    >>> import numpy as np, keras, emphasis, emphasis_tf
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int64")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile("sgd", emphasis_tf.GRLoss(from_logits=True))
    >>> callback = emphasis_tf.TrainingDynamicsCallback(x, y, from_logits=True)
    >>> _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    >>> int(callback.dynamics.count.max())
    2
    """

    def __init__(
        self,
        x: Any,
        labels: Any,
        *,
        from_logits: bool = False,
        every: int = 1,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.x = x
        self.labels = np.asarray(labels)
        if self.labels.ndim != 1 or self.labels.dtype.kind not in "iu":
            raise TypeError(
                f"labels must be a 1-d array of integer class indices, got dtype "
                f"{self.labels.dtype} and shape {self.labels.shape}"
            )
        if not isinstance(from_logits, bool):
            raise TypeError(f"from_logits must be True or False, got {from_logits!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.from_logits, self.every, self.batch_size = from_logits, every, batch_size
        self.dynamics: emphasis.TrainingDynamics | None = None

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if (epoch + 1) % self.every:
            return
        outputs = np.asarray(self.model.predict(self.x, batch_size=self.batch_size, verbose=0))
        if outputs.ndim != 2 or outputs.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"the model's outputs on x must have shape ({self.labels.shape[0]}, C) (one "
                f"row per label), got {outputs.shape}"
            )
        logits = outputs.astype(np.float64)
        if not self.from_logits:
            logits = np.log(np.clip(logits, np.finfo(np.float64).tiny, None))
        if self.dynamics is None:
            self.dynamics = emphasis.TrainingDynamics(logits.shape[0], logits.shape[1])
        self.dynamics.update(np.arange(logits.shape[0]), logits, self.labels)
