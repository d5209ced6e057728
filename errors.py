"""The project's exceptions, in a module that imports nothing of the project: ``models/`` and ``utils/`` both
raise them without depending on each other (scripts turn them into one-line messages: utils.errors.run_main)."""


class UserError(Exception):
    """Bad input (a flag, a file, a dataset): reported as one line, exit status 2."""


class TrainingDiverged(Exception):
    """The loss became NaN/inf; the last good checkpoint is left in place."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's kill, torchrun stopping its workers): unwinds like Ctrl-C, so that a write in
    progress removes its temporary file and the run folder's lock is released."""
