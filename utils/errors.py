"""One-line errors for bad input, and the wrapper every script's main runs under."""
import sys


class UserError(Exception):
    """Bad input (a flag, a file, a dataset): reported as one line, exit status 2."""


class TrainingDiverged(Exception):
    """The loss became NaN/inf; the last good checkpoint is left in place."""


def run_main(main, argv=None):
    """Run ``main(argv)``; turn UserError/TrainingDiverged into a one-line message and a non-zero exit."""
    prog = sys.argv[0]
    try:
        return main(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
