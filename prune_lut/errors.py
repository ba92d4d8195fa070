"""The one exception type a user can cause; the CLI prints it as one line and exits non-zero."""


class UserError(Exception):
    """Bad input the user can fix: the message names the problem and the fix."""
