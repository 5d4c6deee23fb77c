"""The exit codes of every command (its own module: the light ``grokkit.cli`` and the commands'
shared ``common`` both need them)."""

EXIT_FAILED = 1  # a run that diverged, a write the machine refused
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT (grokkit.interrupts.exit_status)
EXIT_TERMINATED = 143  # SIGTERM: 128 + SIGTERM, the run checkpointed as for a Ctrl-C
