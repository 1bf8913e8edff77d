"""Graphs of this project; aegra.json names them as ``./graphs/<file>.py:<attribute>``."""
