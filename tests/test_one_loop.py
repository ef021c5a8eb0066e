"""The trainer is the only training loop in the package: no other module
steps an optimiser or calls backward (optimisers over *inputs*, for inverse
problems and control, would be listed here with their reason)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINER = REPO / "engine" / "training" / "trainer.py"
#: file -> why it may optimise (inputs, not model weights)
EXCEPTIONS: dict[str, str] = {
    "operators/dgno.py": "the inverse problem fits the latent β (through a small MLP) to observations; the decoders are frozen",
    "engine/analysis/shedding_control.py": "the shedding control optimises the inflow peak (an input) through a frozen "
                                           "NeuralStagger rollout; the model's weights are never stepped",
    "engine/benchmarks/physicsnemo.py": "times one Adam step of our MeshGraphNet and of PhysicsNeMo's on random targets "
                                        "(the cost of a training step, not a training); nothing is kept",
}


def _optimiser_calls(path: Path) -> list[int]:
    """Lines that call ``.backward()`` or build a ``torch.optim`` optimiser."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "backward":
                lines.append(node.lineno)
            elif (isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "optim"
                  and isinstance(node.func.value.value, ast.Name) and node.func.value.value.id == "torch"):
                lines.append(node.lineno)
    return lines


def test_only_the_trainer_trains():
    found = {}
    for folder in ("engine", "operators", "physics", "meshes"):
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            if path in (TRAINER, REPO / "engine" / "training" / "optim.py") or rel in EXCEPTIONS:
                continue
            lines = _optimiser_calls(path)
            if lines:
                found[rel] = lines
    assert found == {}, f"training code outside the trainer: {found}"


def test_the_checker_sees_a_loop(tmp_path):
    path = tmp_path / "loop.py"
    path.write_text("import torch\nopt = torch.optim.Adam([])\nloss.backward()\nconfig.optim.phases()\n")
    assert _optimiser_calls(path) == [2, 3]
