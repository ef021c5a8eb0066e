"""``python -m graphfem ...`` (also what ``torchrun -m graphfem train ...`` runs)."""
from graphfem.cli import run

run()
