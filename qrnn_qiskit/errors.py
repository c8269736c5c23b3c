"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class QRNNError(Exception):
    """A problem with the user's input (arguments, files, run directories) that they can fix."""
