"""Batch schedulers (Slurm, PBS): their commands, batch script headers and output; no I/O."""
