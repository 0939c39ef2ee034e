"""A call run in a background thread, whose result (or exception) is collected later."""
from __future__ import annotations

import threading
from typing import Any, Callable


class BackgroundCall:
    """``fn(*args)`` started at once in a daemon thread named ``name``; :meth:`result` waits for it
    and returns what it returned, or raises what it raised."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str):
        self._out: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self._out = fn(*args)
        except BaseException as err:  # raised in the caller by result()
            self._error = err

    def done(self) -> bool:
        """True once the call has returned or raised."""
        return not self._thread.is_alive()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._out
