"""Floor 1, the pieces: data sets, networks, pure loss functions, metrics, ``TrainConfig``, atomic files.

Nothing here trains a chain of generations or knows a run folder; it imports no other floor.
"""
