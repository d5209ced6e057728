"""One-line errors for bad input, and the wrapper every script's main runs under."""
import os
import sys
import warnings


class UserError(Exception):
    """Bad input (a flag, a file, a dataset): reported as one line, exit status 2."""


class TrainingDiverged(Exception):
    """The loss became NaN/inf; the last good checkpoint is left in place."""


def run_main(main, argv=None):
    """Run ``main(argv)``; turn UserError/TrainingDiverged into a one-line message and a non-zero exit."""
    prog = os.path.basename(sys.argv[0])  # as argparse names it in its own one-line errors

    def one_line_warning(message, category, *args, **kwargs):
        text = " ".join(str(message).split())
        return f"{prog}: warning: {category.__name__}: {text}\n"

    warnings.formatwarning = one_line_warning
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
