"""graphfem.operators: neural surrogates (shared layers, one module per model
family) and the name -> class registry that checkpoints refer to.

Models know meshes and physics, nothing of training, files or the CLI.
"""
from .registry import MODELS, available, get_model, register

__all__ = ["MODELS", "available", "get_model", "register"]
