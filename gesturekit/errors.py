"""The toolkit's error types: a user error is one line and an exit code, anything else is a bug."""


class UserError(Exception):
    """Bad input or environment: printed as one line, exit code 2, no traceback.

    The message names the file, line or field and says what was expected.
    """

    exit_code = 2


class SandboxGateFailed(UserError):
    """Phase 1 showed the architecture cannot learn even a small balanced subset."""

    exit_code = 3
