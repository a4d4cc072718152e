"""TensorFlow / Keras adapter for :mod:`emphasis` (being written).

It will expose ``GRLoss`` (a serialisable ``keras.losses.Loss``) and a functional form, registering the
core's stable logit gradient as a custom gradient. Importing this package imports TensorFlow and Keras;
importing :mod:`emphasis` alone never does.
"""

try:
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
except ImportError as err:
    raise ImportError(
        'emphasis_tf needs TensorFlow and Keras 3: pip install "emphasis[tf]"'
    ) from err

__all__: list[str] = []
