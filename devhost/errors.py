"""The one error the local host raises for what the user must fix."""


class DevHostError(RuntimeError):
    """The app or its settings cannot be hosted as declared; the message says what to fix."""
