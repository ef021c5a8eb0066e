"""graphfem: graph-based PDE surrogates on finite-element meshes.

Kept light: ``import graphfem`` imports neither torch models nor scikit-fem.
The subpackages ``graphfem.meshes``, ``graphfem.physics``,
``graphfem.operators`` and ``graphfem.analysis`` are imported on use.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def __getattr__(name: str):
    """Lazy re-exports: ``graphfem.load`` imports torch only when first used."""
    if name == "load":
        from graphfem.checkpoint import load

        return load
    raise AttributeError(f"module 'graphfem' has no attribute {name!r}")
