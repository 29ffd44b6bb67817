"""Tools for working on pyoffload in its checkout (not part of the installed package):
compiling ``p4src/`` into the committed artifacts and checking that they match."""
