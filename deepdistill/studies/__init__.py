"""Floor 4, the studies: the optimal-weight estimation and the kernel-meets-deep bridge.

Imports the floors below; nothing below imports a study.
"""
