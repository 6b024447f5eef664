"""The metrics under their former name: :mod:`deepdistill.core.metrics` re-exported (``analysis.metrics.ece``).

They live in :mod:`deepdistill` because the training records compute them, and a package never imports
one above it (``kerneldistill`` <- ``deepdistill`` <- ``analysis``).
"""
from deepdistill.core.metrics import *  # noqa: F401,F403  (the public names, listed in __all__)
from deepdistill.core.metrics import __all__  # noqa: F401
