"""The eight Table I baselines, registered in the same registry as Hetero-AE.

Importing this package registers them; ``hetero_ae.available_methods()`` lists all nine.
"""
