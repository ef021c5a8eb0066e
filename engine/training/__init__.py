"""graphfem.training."""
