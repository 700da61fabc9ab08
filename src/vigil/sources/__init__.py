"""Sources turn something on the server into artifact streams.

A source owns its whole lifecycle (produce, deep-verify, restore-test, restore,
doctor checks) and never knows where its bytes go. The contract is in
`base.py`; one module per type.
"""
