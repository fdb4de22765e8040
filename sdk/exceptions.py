"""Every error the SDK raises. Messages are full sentences that show the offending value.

::

    RunviewError
    ├── ClientError                  the server could not be reached, or answered unusably
    ├── AccessDenied                 the server wants a (better) API key: none, unknown,
    │                                revoked, or one whose scope is too small
    ├── ServerError                  the server failed on a request (its log has the cause)
    ├── InvalidInput (ValueError)    a value this program passed is malformed, or was refused
    ├── NotFound (LookupError)       no run, task or flow has that id or slug
    ├── RunNotFinished               a result was asked of a run that is not finished
    ├── RunFailed                    a run whose result was asked for failed or crashed
    ├── RunCancelled                 a run whose result was asked for was cancelled
    ├── WaitTimedOut (TimeoutError)  a run did not finish within the time given to wait
    └── ResultError                  a result cannot be written or read
        ├── NoResultLocation         the run finished without a result location
        ├── ResultNotFound           nothing is stored at the location
        ├── ResultUnreadable         something is there, but it does not deserialize
        └── ResultNotTrusted         it would run code as it loads, from a place not trusted

    FlowRunCancelled (BaseException)  stops a flow that is being cancelled
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdk.states import State


class RunviewError(Exception):
    """The base of every runview SDK error."""


class ClientError(RunviewError):
    """The server could not be reached, or did not answer as a GraphQL server does."""


class AccessDenied(RunviewError):
    """The server refused the request's API key (``RUNVIEW_API_KEY``), or its scope."""


class _WithErrors(RunviewError):
    def __init__(self, message: str, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []  # the GraphQL errors, when the server answered with some


class ServerError(_WithErrors):
    """The server failed on a request; the reason is in its log, not in the answer."""


class InvalidInput(_WithErrors, ValueError):
    """A value this program passed is malformed, or the server refused it."""


class NotFound(RunviewError, LookupError):
    """No run, task run or flow has the id or slug asked for."""


class RunNotFinished(RunviewError):
    """A result was asked of a run that has not finished."""


class _WithState(RunviewError):
    def __init__(self, message: str, state: State | None = None) -> None:
        super().__init__(message)
        self.state = state  # the run's state when this was raised, when it is known


class RunFailed(_WithState):
    """A run ended Failed or Crashed: raised by ``State.result()`` when the exception is not
    in this process, and by ``get_task_run_result`` for a child flow run that failed."""


class RunCancelled(_WithState):
    """A run was cancelled: raised by ``State.result()`` and ``get_task_run_result``."""


class WaitTimedOut(_WithState, TimeoutError):
    """A run did not finish within the ``timeout`` given to wait for it (the run goes on)."""


class FlowRunCancelled(BaseException):
    """Raised inside a flow being cancelled, at its next task call, to stop it.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` in user code does
    not swallow it; the runtime catches it and ends the flow run Cancelled.
    """


class ResultError(RunviewError):
    """A result cannot be written or read."""


class NoResultLocation(ResultError):
    """The run finished without recording where a result is (it failed, for example)."""


class ResultNotFound(ResultError):
    """Nothing is stored at the result's location."""


class ResultUnreadable(ResultError):
    """Something is stored at the location, but the serializer cannot read it."""


class ResultNotTrusted(ResultError):
    """A pickle or cloudpickle result is at a location under no trusted result root.

    Loading pickle runs code from the stored bytes, and anyone who can propose a run's state
    chooses the location; so such a result is refused before any byte of it is read. Add the
    root it is under to ``RUNVIEW_TRUSTED_RESULT_ROOTS`` to trust it.
    """

    def __init__(self, message: str, location: str, serializer: str) -> None:
        super().__init__(message)
        self.location = location
        self.serializer = serializer
