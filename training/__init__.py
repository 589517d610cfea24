"""From-scratch NumPy neural networks for Fashion-MNIST. Never imports Django."""

from training.config import ConfigError, TrainingConfig, config_schema

__all__ = ["ConfigError", "TrainingConfig", "config_schema"]
