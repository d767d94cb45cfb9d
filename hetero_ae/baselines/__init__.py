"""The eight Table I baselines, registered in the same registry as Hetero-AE.

Importing this package imports every module in it, and each method module registers its
class; ``hetero_ae.methods`` imports this package and the Hetero-AE model, and lists all nine.
"""

from importlib import import_module
from pkgutil import iter_modules

for _module in iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")
