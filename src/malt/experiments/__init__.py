"""Studies: the MAC and KAML papers' experiments as grids of runs written as tables and plots."""
