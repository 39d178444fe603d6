"""The one exception type the CLI turns into a one-line message and exit code 1.

Library code raises :class:`MaskwatchError` for anything a user can fix (a missing file, a malformed
annotation, a bad option value). Anything else is a bug and keeps its traceback.
"""


class MaskwatchError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""
