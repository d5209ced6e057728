"""One-line errors for bad input, and the wrapper every script's main runs under."""
import os
import signal
import sys
import warnings


class UserError(Exception):
    """Bad input (a flag, a file, a dataset): reported as one line, exit status 2."""


class TrainingDiverged(Exception):
    """The loss became NaN/inf; the last good checkpoint is left in place."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's kill, torchrun stopping its workers): unwinds like Ctrl-C, so that a write in
    progress removes its temporary file and the run folder's lock is released."""


def _terminate(signum, frame):
    raise Terminated()


def run_main(main, argv=None):
    """Run ``main(argv)``; turn UserError/TrainingDiverged into a one-line message and a non-zero exit."""
    prog = os.path.basename(sys.argv[0])  # as argparse names it in its own one-line errors

    def one_line_warning(message, category, *args, **kwargs):
        text = " ".join(str(message).split())
        return f"{prog}: warning: {category.__name__}: {text}\n"

    warnings.formatwarning = one_line_warning
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return main(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(3)
    except Terminated:
        print(f"{prog}: terminated (SIGTERM); the last checkpoint written is kept, --resume auto continues", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
