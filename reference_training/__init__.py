"""Scripts that reproduce the paper's experiments (not part of the installed package).

Run them from the repository root, e.g. ``python -m reference_training.train_cifar --help``.
"""
