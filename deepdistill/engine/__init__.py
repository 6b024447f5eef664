"""Floor 2, one run: the training loop, the resumable run folder, records, claim files, the lazy trainer.

Imports ``deepdistill.core`` only.
"""
