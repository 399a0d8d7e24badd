"""One error type for everything a user can get wrong, printed as one line."""


class InputError(Exception):
    """Bad input: reported as `error: FILE:LINE: problem`, exit status 2."""

    def __init__(self, path, problem, line=None):
        self.path, self.problem, self.line = str(path), problem, line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")
