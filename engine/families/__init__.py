"""graphfem.families."""
