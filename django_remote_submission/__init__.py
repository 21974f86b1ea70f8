"""django-remote-submission: run long jobs on remote servers over SSH from Django."""

__version__ = "3.0.0.dev0"
