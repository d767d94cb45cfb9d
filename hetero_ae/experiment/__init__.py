"""Experiments: a run = (dataset, method config, training config), cached by its key; the profiles
that say which runs a scale of experiment makes, and the ablation variants of Tables II-IV."""
