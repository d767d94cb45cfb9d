"""The eight Table I baselines, registered in the same registry as Hetero-AE.

Importing this package imports every module in it, and each method module registers its
class; ``hetero_ae.available_methods()`` lists all nine methods.
"""

from importlib import import_module
from pkgutil import iter_modules

for _module in iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")
