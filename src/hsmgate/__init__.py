"""hsmgate: a REST gateway to hardware security modules, wire-compatible with the Securosys TSB."""

__version__ = "0.1.0"

import logging as _logging

# Alembic announces each of its plugins at INFO when it is first imported; keep start-up output to
# what an operator needs (set here because every hsmgate module is imported after this package).
_logging.getLogger("alembic").setLevel(_logging.WARNING)
