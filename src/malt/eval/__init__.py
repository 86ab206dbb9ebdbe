"""Evaluation: predictions on the evaluation days, metric reports, the KAML target protocol,
re-scoring a finished run, and the job that trains and evaluates one run."""
