"""Hetero-AE: anomaly detection for medical images with a heterogeneous auto-encoder.

Reference reproduction of S. Lu et al., IEEE Trans. Image Processing 33, 2024.
"""

from typing import Any

from .config import ModelConfig, TrainConfig

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TrainConfig", "available_methods", "build_model"]


def __getattr__(name: str) -> Any:
    """The methods' functions, imported with torch on first use (``hetero-ae --help`` needs neither)."""
    if name in ("available_methods", "build_model"):
        from . import methods

        return getattr(methods, name)
    raise AttributeError(f"module 'hetero_ae' has no attribute {name!r}")
