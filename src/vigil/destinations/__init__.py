"""Destinations store artifacts and commit backups by their manifest.

A destination never knows what the bytes are. The contract (what each method
does and which errors it raises) is in `base.py`; one module per type, each
passing tests/contract/.
"""
