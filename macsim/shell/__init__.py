"""A small POSIX-subset shell that interprets the command text an SSH client sends."""
