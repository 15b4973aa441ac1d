"""An immediate stop tolerates the wheel's cleanup signalling a server process that has just exited."""

from __future__ import annotations

from synapse_async.db.embedded import _process_gone


class NoSuchProcess(Exception):  # the shape of psutil's error: raised from kill's ProcessLookupError
    pass


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise NoSuchProcess("process no longer exists") from inner
    except NoSuchProcess as outer:
        return outer


def test_a_vanished_process_is_recognised_through_the_chain() -> None:
    assert _process_gone(ProcessLookupError(3, "No such process"))
    assert _process_gone(_raised_from(ProcessLookupError(3, "No such process")))


def test_other_failures_are_not_excused() -> None:
    assert not _process_gone(PermissionError(13, "denied"))
    assert not _process_gone(_raised_from(OSError(5, "I/O error")))
