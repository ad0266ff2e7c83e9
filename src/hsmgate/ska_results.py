"""Wiring of the sealing of SKA request results (``domain/ska/results.py``): the sealer of
this hsmgate, from the master key and HSMGATE_SKA_RESULT_RETENTION. Called by ``bootstrap.py``."""

from __future__ import annotations

from datetime import timedelta

from hsmgate.domain.ska.results import ResultSealer
from hsmgate.settings import Settings


def result_sealer(settings: Settings) -> ResultSealer:
    """Keyed by the master key (HSMGATE_MASTER_KEY, or ``<data-dir>/master.key``, created 0600 on
    first use with either backend)."""
    return ResultSealer(settings.load_master_key(), retention=timedelta(seconds=settings.ska_result_retention))
