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


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle among the modules of ``edges`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(edges.get(module, ())):
            if other not in edges:
                continue
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state:
                found = visit(other, path)
                if found:
                    return found
        state[module] = 2
        path.pop()
        return None

    for module in sorted(edges):
        if module not in state:
            found = visit(module, [])
            if found:
                return found
    return None


def test_engine_modules_import_no_circle():
    """No engine module imports, even lazily inside a function, a module that leads back to it."""
    edges: dict[str, set[str]] = {}
    for path, _, module in _imports("engine", "graphfem"):
        parts = ["graphfem"] + list(path.relative_to(REPO / "engine").parent.parts)
        own = ".".join(parts if path.name == "__init__.py" else parts + [path.stem])
        edges.setdefault(own, set())
        # the bare package (its __version__) is every module's parent, not a circle of modules
        if module.startswith("graphfem.") and module.split(".")[:2] != ["graphfem", "meshes"] \
                and not module.startswith(("graphfem.physics", "graphfem.operators")):
            edges[own].add(module)
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def test_the_circle_finder_sees_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
