"""The automation domain, with no I/O: runbooks, typed parameters (JSON Schema), jobs and streams.

The server and the worker share this package and talk HTTP; neither imports the other.
"""
