"""``python -m graphfem ...`` (also what ``torchrun -m graphfem train ...`` runs)."""
from .cli import run

run()
