"""Progress on long work: the one progress bar every long command shows (on stderr), and the notice a
command gives when it has to wait for another (a lock held elsewhere)."""

from collections.abc import Callable
from contextvars import ContextVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

err = Console(stderr=True)

# Who is told that the work waits, and why: nobody by default (the log has it); the command line sets
# it to print on stderr (popex.cli.main), so that an operator does not take a wait for a hang.
waiting_notice: ContextVar[Callable[[str], None] | None] = ContextVar("waiting_notice", default=None)


def progress_bar() -> Progress:
    """The progress bar every long command shows."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


def say_waiting(message: str) -> None:
    """Tell whoever runs this work that it waits, and for what (in their words)."""
    if (notice := waiting_notice.get()) is not None:
        notice(message)
