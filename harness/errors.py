"""One error root for everything a user can get wrong or a tool can fail at.

The CLI prints ``str(error)`` on one line and exits 1 (``--debug`` adds the
traceback); messages therefore name the object, the value and the fix.
"""


class TinyhilError(Exception):
    """Root of all errors tinyhil reports to a user.

    ``exit_code`` is what the CLI exits with: 2 for a user's bad input (a file,
    a field, a name to fix), 1 for a failure while doing the work.
    """

    exit_code = 1


class UserInputError(TinyhilError):
    """Bad input from the user: fix the named file, field or option."""

    exit_code = 2


class ModelError(UserInputError):
    """A .tflite file that cannot be read or is outside what tinyhil supports."""


class UnsupportedOpError(ModelError):
    """An operator an engine does not implement; raised before anything compiles."""

    def __init__(self, model: str, op_index: int, op_name: str, engine: str, why: str = "") -> None:
        self.model = model
        self.op_index = op_index
        self.op_name = op_name
        self.engine = engine
        detail = f": {why}" if why else ""
        super().__init__(
            f"{model}: operator #{op_index} {op_name} is not supported by the "
            f"'{engine}' engine{detail}"
        )


class BuildError(TinyhilError):
    """A compiler or linker failed; carries the command and the tail of stderr."""

    def __init__(self, message: str, command: list[str] | None = None, stderr: str = "") -> None:
        self.command = command or []
        self.stderr = stderr
        tail = "\n".join(stderr.strip().splitlines()[-20:])
        text = message
        if command:
            text += f"\n  command: {' '.join(command)}"
        if tail:
            text += f"\n  stderr (last lines):\n{tail}"
        super().__init__(text)


class DoesNotFitError(UserInputError):
    """A model's firmware exceeds the target's flash or RAM (the linker says by how much)."""


class RunnerError(TinyhilError):
    """A runner could not start, talk to, or finish a firmware run."""


class RunTimeout(RunnerError):
    """A firmware did not answer in time (hung or crashed) and was stopped."""


class DutProtocolError(RunnerError):
    """The device answered, but not in the DUT protocol (or with an e-[...] error)."""


class ToolMissingError(TinyhilError):
    """A system tool is not installed; the message gives the install command."""


class DatasetError(UserInputError):
    """A dataset directory or file that cannot be used as model input."""


class CheckFailed(TinyhilError):
    """An engine's outputs differ from the reference interpreter's."""
