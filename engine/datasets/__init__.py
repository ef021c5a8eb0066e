"""graphfem.datasets."""
