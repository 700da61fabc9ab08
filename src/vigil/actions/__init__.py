"""One module per thing a user asks for: backup (the Run that decides an outcome),
verify, restore, prune and retention, listing, health, doctor, schedule.

Actions join sources, the pipeline, destinations, state and notifications;
they never print for the operator (the CLI renders what they return) and
never branch on a source's or destination's type.
"""
