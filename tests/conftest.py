"""Shared fixtures: where the third-party test meshes live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_meshes() -> Path:
    """The folder of third-party meshes: ``../shared/data/meshes`` next to the
    repository, or ``$GRAPHFEM_SHARED/data/meshes`` (or ``$GRAPHFEM_SHARED``
    itself when it holds the meshes); an error when neither exists."""
    candidates = [REPO.parent / "shared" / "data" / "meshes"]
    env = os.environ.get("GRAPHFEM_SHARED")
    if env:
        candidates = [Path(env) / "data" / "meshes", Path(env)] + candidates
    for folder in candidates:
        if (folder / "skfem_box.msh").exists():
            return folder.resolve()
    raise FileNotFoundError("third-party test meshes not found: expected ../shared/data/meshes next to the "
                            "repository, or set GRAPHFEM_SHARED")
