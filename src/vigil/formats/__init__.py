"""What bytes mean on disk: tar headers (writer and reader), the age
passphrase stream, the manifest and the file index.

Pure format code: imports nothing from vigil, so that it can be reasoned
about, fuzzed and reused on its own.
"""
