"""The exceptions a user can cause; the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input the user can fix: the message names the problem and the fix."""


class ParamError(UserError):
    """A bad value of one parameter. The library names its parameter (``population must be >= 2``);
    the CLI names the option that set it (``--population must be >= 2``)."""

    def __init__(self, param: str, problem: str):
        self.param, self.problem = param, problem
        super().__init__(f"{param} {problem}")

    def for_option(self, option: str) -> str:
        return f"{option} {self.problem}"
