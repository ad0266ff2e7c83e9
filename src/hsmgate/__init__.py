"""hsmgate: a REST gateway to hardware security modules, wire-compatible with the Securosys TSB."""

__version__ = "0.1.0"
