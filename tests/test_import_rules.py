"""The dependency direction meshes <- physics <- operators <- engine, checked
by parsing every import statement (and one real import in a subprocess)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports(folder: str, package: str) -> list[tuple[Path, int, str]]:
    """(file, line, absolute module) for every import in ``folder``, with
    relative imports resolved against ``package`` (the folder's import name)."""
    found = []
    root = REPO / folder
    for path in sorted(root.rglob("*.py")):
        parts = package.split(".") + list(path.relative_to(root).parent.parts)
        is_init = path.name == "__init__.py"
        module_parts = parts if is_init else parts + [path.stem]
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    base = node.module or ""
                else:
                    anchor = module_parts if is_init else module_parts[:-1]
                    if node.level - 1 > len(anchor):
                        found.append((path, node.lineno, "<beyond top level>"))
                        continue
                    kept = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(kept + ([node.module] if node.module else []))
                found.append((path, node.lineno, base))
                if node.module is None or node.level > 0:  # from . import x: x may be a module
                    found += [(path, node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _violations(imports, allowed_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path, line, module in imports:
        inside = module == allowed_prefix or module.startswith(allowed_prefix + ".")
        if module == "<beyond top level>" or (module.split(".")[0] == "graphfem" and not inside
                                              and any(module == f or module.startswith(f + ".")
                                                      for f in forbidden)):
            bad.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return bad


def test_meshes_imports_no_other_graphfem_package():
    imports = _imports("meshes", "graphfem.meshes")
    assert imports, "nothing parsed"
    bad = _violations(imports, "graphfem.meshes", ("graphfem",))
    assert bad == []


def test_physics_never_imports_operators():
    bad = _violations(_imports("physics", "graphfem.physics"), "graphfem.physics", ("graphfem.operators",))
    assert bad == []


def test_the_checker_sees_violations(tmp_path, monkeypatch):
    """The parser resolves relative imports that climb out of the package."""
    fake = tmp_path / "meshes"
    fake.mkdir()
    (fake / "a.py").write_text("from ..operators import layers\nfrom .mesh import Mesh\nimport graphfem.physics\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    bad = _violations(_imports("meshes", "graphfem.meshes"), "graphfem.meshes", ("graphfem",))
    assert len(bad) == 3 and any("graphfem.operators" in b for b in bad) and any("physics" in b for b in bad)


def test_importing_meshes_loads_no_models():
    code = ("import sys, graphfem.meshes\n"
            "bad = [m for m in sys.modules if m.startswith(('graphfem.operators', 'graphfem.physics', "
            "'graphfem.analysis', 'torch_geometric'))]\n"
            "print(bad)\nassert not bad, bad\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
