"""populace's own error types. User errors carry the file, the field and the fix."""

from __future__ import annotations


class PopulaceError(Exception):
    """Base of every error populace raises on purpose."""


class UserInputError(PopulaceError):
    """Bad input from the user (config, taxonomy, run folder): the CLI exits with code 2."""

    def __init__(self, file: str, field: str, problem: str, fix: str) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{file}: {field}: {problem} (fix: {fix})")

    def __reduce__(self) -> tuple[type[UserInputError], tuple[str, str, str, str]]:
        # crosses process boundaries (a Ray worker's error) whole, with its fields
        return type(self), (self.file, self.field, self.problem, self.fix)


class BackendError(PopulaceError):
    """An LLM backend could not be started or answered in a way we cannot use."""
