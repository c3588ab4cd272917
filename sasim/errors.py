"""The one exception type that sasim raises for bad user input.

Every message names the problem and the fix. The CLI turns a :class:`SasimError` into a single
line on stderr and exit status 2; library users catch it like any other exception.
"""


class SasimError(Exception):
    """Bad input (configuration, checkpoint, data or flags) that the user can fix.

    ``param`` names the library parameter at fault, when one is; the CLI then names the flag that set it.
    """

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param
