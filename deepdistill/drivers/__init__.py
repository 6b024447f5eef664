"""Floor 3, many runs: grids and shards, the local runner (``--jobs``), the Ray backend.

Imports ``deepdistill.core`` and ``deepdistill.engine`` only.
"""
