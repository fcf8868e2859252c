"""The ``quality`` use case: steel plate surface defects, one fault type per plate."""
