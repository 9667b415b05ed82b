"""What a user can fix: every "your input is wrong" exception derives from `UserError`.

A stage (rnngan.stage.run_stage) and the `rnngan` command report a UserError as one line,
`rnngan <stage>: error: <message>`, and exit code 2; any other exception is a bug in rnngan and
keeps its traceback. Each module defines its own subclasses beside the code that raises them
(ParamsError in config.py, DownloadError in data/download.py, ...), most also deriving from the
builtin they were before (ValueError, RuntimeError), so code that catches those still does.
"""


class UserError(Exception):
    """The input is wrong (a params value, a file, the machine): the message names it and the fix."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder a stage reads is not there; the message names it and what makes it."""
