"""The ``credo`` command line: one thin module per area over the library."""
