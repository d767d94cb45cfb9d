"""Training: the loop every method shares, checkpoints, the stopping rule, the frozen-feature cache,
how runs execute (precision, compilation, threads, input pipeline) and DistributedDataParallel."""
