"""The exit codes of every command (its own module: the light ``grokkit.cli`` and the commands'
shared ``common`` both need them)."""

EXIT_FAILED = 1  # a run that diverged, a write the machine refused
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
