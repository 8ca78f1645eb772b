"""aioloop as an asyncio event loop.

``EventLoop`` subclasses the Rust core ``aioloop._aioloop.Loop`` (whose scheduling core is
aioloop's ``LocalLoop``: ready queue, timers, iteration, cross-thread inbox) and
``asyncio.AbstractEventLoop``. The scheduling methods — ``call_soon``, ``call_later``,
``call_at``, ``call_soon_threadsafe``, ``time``, ``stop`` and the iteration — are Rust; the
bookkeeping that asyncio implements in Python (exception handler, executor, async
generator hooks, ``run_until_complete``) is reused from ``asyncio.BaseEventLoop``, as the
"Extending" page suggests, since it only calls the scheduling methods.

Tasks: ``EventLoop(native_tasks=True)`` (or ``loop.set_task_factory(aioloop.task_factory)``)
creates ``aioloop.Task``, a task written in Rust that uses asyncio's task-lifetime
functions; the default creates asyncio's own ``Task`` with ``loop=self``.
"""

import asyncio
import sys
import threading
import weakref
from asyncio import base_events, coroutines, events

from ._aioloop import Handle, Loop as _Loop, Task, TimerHandle

__all__ = (
    "EventLoop",
    "EventLoopPolicy",
    "Handle",
    "Task",
    "TimerHandle",
    "install",
    "new_event_loop",
    "run",
    "task_factory",
)

# Which task the loop creates by default: asyncio's C Task (measured faster here, see
# benches/python/bench.py) or aioloop's native Task.
DEFAULT_NATIVE_TASKS = False

_Base = base_events.BaseEventLoop


def task_factory(loop, coro, *, context=None):
    """A task factory creating native ``aioloop.Task`` objects."""
    return Task(coro, loop=loop, context=context)


class EventLoop(_Loop, asyncio.AbstractEventLoop):
    """An asyncio event loop on aioloop's ``LocalLoop``."""

    def __init__(self, *, native_tasks=None):
        self._native_tasks = DEFAULT_NATIVE_TASKS if native_tasks is None else native_tasks
        self._thread_id = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._task_factory = None
        self._exception_handler = None
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self._current_handle = None
        self.slow_callback_duration = 0.1
        self._debug = coroutines._is_debug_mode()
        self._set_debug_core(self._debug)

    def __repr__(self):
        return (
            f"<{self.__class__.__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    # -- lifecycle -------------------------------------------------------------------
    @property
    def _closed(self):
        return self._is_closed_core()

    def is_closed(self):
        return self._is_closed_core()

    def is_running(self):
        return self._thread_id is not None

    def _check_closed(self):
        if self._is_closed_core():
            raise RuntimeError("Event loop is closed")

    def run_forever(self):
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            events._set_running_loop(self)
            self._run_forever_core()
        finally:
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def close(self):
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._is_closed_core():
            return
        self._close_core()
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    def __del__(self):
        try:
            if not self._is_closed_core() and not self.is_running():
                self._close_core()
        except Exception:
            pass

    # -- tasks -----------------------------------------------------------------------
    def create_task(self, coro, *, name=None, context=None):
        self._check_closed()
        if self._task_factory is None:
            if self._native_tasks:
                return Task(coro, loop=self, name=name, context=context)
            return asyncio.Task(coro, loop=self, name=name, context=context)
        if context is None:
            task = self._task_factory(self, coro)
        else:
            task = self._task_factory(self, coro, context=context)
        if name is not None:
            task.set_name(name)
        return task

    create_future = _Base.create_future
    set_task_factory = _Base.set_task_factory
    get_task_factory = _Base.get_task_factory
    run_until_complete = _Base.run_until_complete
    _check_running = _Base._check_running
    _check_callback = _Base._check_callback

    # -- executor, async generators ------------------------------------------------
    run_in_executor = _Base.run_in_executor
    set_default_executor = _Base.set_default_executor
    shutdown_default_executor = _Base.shutdown_default_executor
    _do_shutdown = _Base._do_shutdown
    _check_default_executor = _Base._check_default_executor
    shutdown_asyncgens = _Base.shutdown_asyncgens
    _asyncgen_firstiter_hook = _Base._asyncgen_firstiter_hook
    _asyncgen_finalizer_hook = _Base._asyncgen_finalizer_hook

    # -- errors, debug ----------------------------------------------------------------
    get_exception_handler = _Base.get_exception_handler
    set_exception_handler = _Base.set_exception_handler
    default_exception_handler = _Base.default_exception_handler
    call_exception_handler = _Base.call_exception_handler
    get_debug = _Base.get_debug

    def set_debug(self, enabled):
        _Base.set_debug(self, enabled)
        self._set_debug_core(enabled)

    _set_coroutine_origin_tracking = _Base._set_coroutine_origin_tracking

    def _timer_handle_cancelled(self, handle):
        pass


def new_event_loop(*, native_tasks=None):
    """A new aioloop event loop."""
    return EventLoop(native_tasks=native_tasks)


class EventLoopPolicy(events.BaseDefaultEventLoopPolicy if sys.platform == "win32" else asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, creating aioloop event loops."""

    def _loop_factory(self):
        return new_event_loop()


def install():
    """Makes aioloop the loop of ``asyncio.new_event_loop()`` / ``asyncio.run()``."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None, native_tasks=None):
    """``asyncio.run(main)`` on a new aioloop event loop."""
    if sys.version_info >= (3, 12):
        return asyncio.run(
            main, debug=debug, loop_factory=lambda: new_event_loop(native_tasks=native_tasks)
        )
    with asyncio.Runner(
        debug=debug, loop_factory=lambda: new_event_loop(native_tasks=native_tasks)
    ) as runner:
        return runner.run(main)
