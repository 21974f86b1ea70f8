"""Batch schedulers (Slurm, PBS): their commands, batch script headers and output (pure),
and the one status call per login and interval that asks about all its jobs (poll)."""
