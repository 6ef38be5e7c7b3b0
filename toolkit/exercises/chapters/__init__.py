"""Exercise definitions, one module per tutorial: ``chNN_<topic>.py`` registers the exercises ``NN.*``.

Every module in this package is imported (in name order) when ``toolkit.exercises`` is imported, so a new
chapter needs no registration step. Keep imports of heavy toolkit parts (models, probes) inside functions.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("ch"):
        importlib.import_module(f"{__name__}.{_info.name}")
