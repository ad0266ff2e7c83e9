"""Sub-commands of the ``hsmgate`` CLI, one module per command group."""
