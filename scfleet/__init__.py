"""SignalCraft Fleet's composition root: the ``scfleet`` command and the library API.

It is the only package that knows every other one: it wires boards (``hw_bridge``) and the
embedded reference server (``reference_server``) into the engine (``simulator``).
"""

__version__ = "0.1.0"
