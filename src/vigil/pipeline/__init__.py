"""How bytes travel: BackupSet (one producer to N destinations), streams, fan-out,
hashing, age encryption, and reading stored artifacts back (decrypt, decompress, check).

Knows nothing of what the bytes mean (that is `formats/`) nor of which
command runs (that is `actions/`); imports `formats/` and `destinations/`, never `actions/` or `cli/`.
"""
