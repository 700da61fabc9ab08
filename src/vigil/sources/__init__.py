"""Sources turn something on the server into artifact streams, and read them back.

A source owns its whole lifecycle (produce, deep-verify, restore-test, restore,
doctor checks) and never knows where its bytes go. The contract is in
`base.py`; one module per type; restore_file.py and files_restore.py write
restored data without trusting what the target already holds.
"""
