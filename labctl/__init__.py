"""labctl: the controller of the TLS wire lab."""

__version__ = "0.1.0"
