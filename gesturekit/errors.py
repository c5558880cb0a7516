"""The toolkit's error types: a user error is one line and an exit code, anything else is a bug."""


class UserError(Exception):
    """Bad input or environment: printed as one line, exit code 2, no traceback.

    The message names the file, line or field and says what was expected.
    """

    exit_code = 2

    def __init__(self, message: str):
        # One line whatever the cause's text holds (an interpreter's message can span lines).
        super().__init__(" ".join(part.strip() for part in str(message).splitlines() if part.strip()))


class SandboxGateFailed(UserError):
    """Phase 1 showed the architecture cannot learn even a small balanced subset."""

    exit_code = 3
