"""What `autoinstrument report` refuses to work with: one base class, so a caller catches one name."""

from __future__ import annotations


class ReportError(Exception):
    """Inputs or budgets the report cannot use; the message names the file (and key) at fault. Exit code 2."""


class InputError(ReportError):
    """An input that cannot be found, opened or read."""


class BudgetError(ReportError, ValueError):
    """Budgets that cannot be used (unreadable, not YAML, wrong shape); the message names the place."""


__all__ = ["BudgetError", "InputError", "ReportError"]
