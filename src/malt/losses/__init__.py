"""Loss functions: per-view binary and Cartesian losses (`views`), the RLU ranking loss
(`ranking`)."""
