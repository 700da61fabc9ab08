"""The `vigil` command: parse arguments, load jobs, call one action, map its outcome to an exit code.

Nothing below the CLI prints for the operator or calls `sys.exit`; the CLI
owns the exit-code table (SPEC §1), the global flags and the rendering of
tables and JSON. It may import every other layer; nothing imports it.
"""
