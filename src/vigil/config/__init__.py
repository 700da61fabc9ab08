"""Job files to typed, validated structs, and the secrets they name.

Pure: reading a TOML file and the environment is all the I/O that happens
here. Imports only `vigil.errors` and `vigil.timeutil`; every other layer may
import it.
"""
