"""Coverstore: the server behind covers.openlibrary.org."""
