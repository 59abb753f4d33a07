"""Op lowerings of the builtin engine; importing this package registers them all.

Every module in this package registers its ops with
``harness.engines.builtin.lowering.lowering``; adding an op means adding a
module (and its kernel under firmware_templates/engines/builtin/).
"""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
