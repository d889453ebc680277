"""User-facing error types. The CLI prints any DcganError as one line and exits non-zero."""


class DcganError(Exception):
    """Bad input from the user: a message that fits on one line, never a traceback."""

    exit_code = 1


class UsageError(DcganError):
    """An invalid option value or combination (exit code 2, like argparse)."""

    exit_code = 2


class DataError(DcganError):
    """A dataset or image folder that cannot be read."""


class CheckpointError(DcganError):
    """A run directory or checkpoint that is missing, corrupt or does not match."""
