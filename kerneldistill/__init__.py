"""Kernel ridge self-distillation in closed form (Borup & Andersen 2021; Mobahi et al. 2020)."""
from .filters import filter_diagonals, filter_path

__all__ = ["filter_diagonals", "filter_path"]
