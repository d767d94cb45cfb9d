"""Hetero-AE: anomaly detection for medical images with a heterogeneous auto-encoder.

Reference reproduction of S. Lu et al., IEEE Trans. Image Processing 33, 2024.
"""

from .config import ModelConfig, TrainConfig
from .registry import available_methods, build_model

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TrainConfig", "available_methods", "build_model"]
