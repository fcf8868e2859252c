"""The ``disease`` use case: breast-cancer diagnosis from cell-nucleus measurements."""
