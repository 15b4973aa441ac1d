"""Pure reward core: formulas and decisions with no I/O; services and the pipeline call in here."""
