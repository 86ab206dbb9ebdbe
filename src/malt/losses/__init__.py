"""Loss functions: per-view binary and Cartesian losses (`views`), the RLU ranking loss
(`ranking`), and the loss terms a model hands the trainer (`terms`)."""
