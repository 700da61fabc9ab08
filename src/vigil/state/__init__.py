"""What vigil keeps about itself in `state_dir`: the journal (runs, outbox,
verify results) and the job locks.

The only place that writes SQL or takes a lock; imports `formats/` at most.
"""
