"""The report: what the notebooks call to turn cached runs into the paper's tables and figures,
the paper's printed numbers, the verdicts, the run manifest and the README's result blocks."""
