"""The example plugin package, shipped inside stylefw as data: ``stylefw plugins --example DIR`` copies it out.

This file only makes the folder a package that ``importlib.resources`` can find; it is not copied.
"""
