"""The one warning hsmgate silences at start-up.

cryptography deprecates DSA and warns whenever a DSA class is named. hsmgate keeps DSA because the
TSB API has DSA keys and SHA*_WITH_DSA signatures (``hsm/softcrypto.py`` names the classes when the
soft token is loaded), so every start printed that warning, which no operator can act on: when
cryptography drops DSA, ``hsm/softcrypto.py`` needs another implementation, and the tests say so.
Only that warning (its message and category) is filtered; the command line and the app (also when
a process manager imports ``hsmgate.app``) install the filter when they are imported, and
``hsm/softcrypto.py`` silences it around the type aliases it defines when imported (whichever
module imports it first).
"""

from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning


def silence_dsa_deprecation() -> None:
    warnings.filterwarnings("ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning)
