"""aioloop as an asyncio event loop.

``EventLoop`` subclasses the Rust core ``aioloop._aioloop.Loop`` (whose scheduling core is
aioloop's ``LocalLoop``: ready queue, timers, iteration, cross-thread inbox) and
``asyncio.AbstractEventLoop``. The scheduling methods — ``call_soon``, ``call_later``,
``call_at``, ``call_soon_threadsafe``, ``time``, ``stop`` and the iteration — are Rust; the
bookkeeping that asyncio implements in Python (exception handler, executor, async
generator hooks, ``run_until_complete``) is reused from ``asyncio.BaseEventLoop``, as the
"Extending" page suggests, since it only calls the scheduling methods.

Tasks: by default (``DEFAULT_NATIVE_TASKS``) the loop creates ``aioloop.Task``, a task
written in Rust that uses asyncio's task-lifetime functions (also
``loop.set_task_factory(aioloop.task_factory)``); ``EventLoop(native_tasks=False)`` creates
asyncio's own ``Task`` with ``loop=self``.
"""

import asyncio
import selectors
import socket
import sys
import signal
import threading
import warnings
import weakref
from asyncio import base_events, coroutines, events, futures, selector_events, unix_events

from ._aioloop import Handle, Loop as _Loop, SocketTransport as _SocketTransportCore, Task, TimerHandle

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

# Which task the loop creates by default (issue 14: whichever benchmarks faster while
# passing the same tests). aioloop's native Task: collected by the GC like asyncio's since
# branch pygc, the same CPython test_asyncio results (2062 run, 2028 passed, 1 expected
# failure), and faster on create_task + gather (bench.py, three release runs on
# 2026-12-04, loaded: see README); asyncio's C Task stays selectable
# (EventLoop(native_tasks=False)).
DEFAULT_NATIVE_TASKS = True

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
        # I/O: the handle of each watched descriptor (the watchers themselves are the
        # Rust loop's), the transports by descriptor (asyncio's _ensure_fd_no_transport),
        # signal handlers and the self-pipe set_wakeup_fd writes to (made on first use).
        self._readers = {}
        self._writers = {}
        self._transports = weakref.WeakValueDictionary()
        self._selector = _SelectorView(self)
        self._signal_handlers = {}
        self._ssock = None
        self._csock = None
        self._internal_fds = 0

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
            wakeup = self._install_signal_wakeup()
            try:
                self._run_forever_core()
            finally:
                if wakeup and not self._signal_handlers:
                    signal.set_wakeup_fd(-1)
        finally:
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def _install_signal_wakeup(self):
        """On the main thread, points Python's signal wake-up fd at the self-pipe while the
        loop runs, as uvloop does: a signal that lands after the loop last checked for one
        but before it sleeps then still wakes it (Ctrl-C is not lost). Returns whether it
        installed it (an fd set by someone else is left alone)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if self._ssock is None:
            self._make_self_pipe()
        fd = self._csock.fileno()
        try:
            old = signal.set_wakeup_fd(fd)
        except (ValueError, OSError):
            return False
        if old not in (-1, fd):
            signal.set_wakeup_fd(old)
            return False
        return old == -1

    def close(self):
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._is_closed_core():
            return
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
        if self._ssock is not None:
            self._close_self_pipe()
        for handle in (*self._readers.values(), *self._writers.values()):
            handle.cancel()
        self._readers.clear()
        self._writers.clear()
        self._selector = None  # as asyncio's: transports' repr stops asking
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
    # create_task is the Rust core's (no Python frame per task): closed check, then the
    # native Task or asyncio.Task(coro, loop=self, name=name, context=context), or, with
    # a task factory set, this:
    def _create_task_with_factory(self, coro, name, context):
        if context is None:
            task = self._task_factory(self, coro)
        else:
            task = self._task_factory(self, coro, context=context)
        if name is not None:
            task.set_name(name)
        return task

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
    # get_debug is the Rust core's (asyncio's C Future asks on every creation); _debug,
    # which asyncio's code reads and writes, is a view of the same flag.
    @property
    def _debug(self):
        return self.get_debug()

    @_debug.setter
    def _debug(self, enabled):
        self._set_debug_core(bool(enabled))

    set_debug = _Base.set_debug

    _set_coroutine_origin_tracking = _Base._set_coroutine_origin_tracking

    def _timer_handle_cancelled(self, handle):
        pass

    # -- I/O watchers (the Rust loop's reactor) --------------------------------------
    def _add_reader(self, fd, callback, *args):
        return self._watch(self._readers, False, fd, callback, args)

    def _add_writer(self, fd, callback, *args):
        return self._watch(self._writers, True, fd, callback, args)

    def _remove_reader(self, fd):
        return self._unwatch(self._readers, False, fd)

    def _remove_writer(self, fd):
        return self._unwatch(self._writers, True, fd)

    def _watch(self, table, write, fd, callback, args):
        self._check_closed()
        fd = selectors._fileobj_to_fd(fd)
        handle = self._add_watcher(fd, write, callback, *args)
        old = table.get(fd)
        table[fd] = handle
        if old is not None:
            old.cancel()
        return handle

    def _unwatch(self, table, write, fd):
        if self.is_closed():
            return False
        try:
            fd = selectors._fileobj_to_fd(fd)
        except ValueError:
            return False
        handle = table.pop(fd, None)
        self._remove_watcher(fd, write)
        if handle is None:
            return False
        handle.cancel()
        return True

    # -- signals (set_wakeup_fd writes the signal number to the self-pipe) -----------
    def add_signal_handler(self, sig, callback, *args):
        self._check_closed()
        if self._ssock is None:
            self._make_self_pipe()
        return _Unix.add_signal_handler(self, sig, callback, *args)

    def _stop_serving(self, sock):
        # The reader's watcher polls a duplicate of the descriptor, closed when the
        # cancelled watcher next runs: shut the listener down now so that, as with
        # asyncio, connecting right after Server.close() is refused.
        self._remove_reader(sock.fileno())
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _make_self_pipe(self):
        _Sel._make_self_pipe(self)
        # The self-pipe only ends a wait (signals are checked between passes): passes
        # busy with callbacks need not harvest I/O for it alone (run_host_passes).
        self._set_quiet_sources(self._internal_fds)

    def _close_self_pipe(self):
        _Sel._close_self_pipe(self)
        self._set_quiet_sources(self._internal_fds)

    def _add_callback_signalsafe(self, handle):
        # Called from the self-pipe's reader on this loop's thread.
        self.call_soon(_run_signal_handle, handle)


    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        # The Rust transport (python/src/transport.rs) instead of asyncio's
        # _SelectorSocketTransport; SSL still layers asyncio's sslproto over it.
        return _SocketTransport(self, sock, protocol, waiter, extra, server)


class _SocketTransport(_SocketTransportCore):
    """asyncio's socket transport, in Rust (``aioloop._aioloop.SocketTransport``); this
    subclass only schedules what asyncio's ``_SelectorSocketTransport.__init__`` does:
    ``connection_made``, then reading, then the waiter."""

    _start_tls_compatible = True

    def __init__(self, loop, sock, protocol, waiter=None, extra=None, server=None):
        loop._transports[self._sock_fd] = self
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(futures._set_result_unless_cancelled, waiter, None)

    # A Rust class cannot also derive from asyncio.Transport (its __slots__ clash with the
    # Rust object's layout); isinstance() falls back to __class__, so the transport
    # reports a subclass of asyncio.Transport there (type() still gives this class).
    @property
    def __class__(self):
        return _TransportClass

    def __del__(self, _warn=warnings.warn):
        sock = self._sock
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()


class _TransportClass(asyncio.Transport):
    """What ``_SocketTransport().__class__`` answers: an ``asyncio.Transport``."""

    __slots__ = ()


_TransportClass.__name__ = _TransportClass.__qualname__ = "_SocketTransport"


def _run_signal_handle(handle):
    if not handle._cancelled:
        handle._run()


class _SelectorView:
    """What asyncio's transports read of ``loop._selector``: whether a descriptor is
    watched, for their repr (``selector_events._test_selector_event``)."""

    def __init__(self, loop):
        self._loop = weakref.ref(loop)

    def get_key(self, fd):
        loop = self._loop()
        fd = selectors._fileobj_to_fd(fd)
        reader = loop._readers.get(fd) if loop is not None else None
        writer = loop._writers.get(fd) if loop is not None else None
        if reader is None and writer is None:
            raise KeyError(f"{fd!r} is not registered")
        mask = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        return selectors.SelectorKey(fd, fd, mask, (reader, writer))


_Sel = selector_events.BaseSelectorEventLoop
_Unix = unix_events._UnixSelectorEventLoop

# asyncio's own I/O layer on top of the watchers above: these methods only use
# _add_reader/_add_writer/_remove_*, the task and future machinery and the transports
# table, so they are taken from asyncio's selector loop as they are (none uses super()).
_BORROWED = {
    _Base: (
        "_connect_sock", "_create_connection_transport", "_create_server_getaddrinfo",
        "_ensure_resolved", "_getaddrinfo_debug", "_log_subprocess", "_sendfile_fallback",
        "_sock_sendfile_fallback", "_check_sendfile_params", "connect_accepted_socket",
        "connect_read_pipe", "connect_write_pipe", "create_connection",
        "create_datagram_endpoint", "create_server", "getaddrinfo", "getnameinfo",
        "sendfile", "sock_sendfile", "start_tls", "subprocess_exec", "subprocess_shell",
    ),
    _Sel: (
        "add_reader", "add_writer", "remove_reader", "remove_writer",
        "_ensure_fd_no_transport", "_accept_connection", "_accept_connection2",
        "_make_datagram_transport", "_make_ssl_transport",
        "_start_serving", "_read_from_self", "_sendfile_native",
        "sock_accept", "_sock_accept", "sock_connect", "_sock_connect", "_sock_connect_cb",
        "sock_recv", "_sock_recv", "sock_recv_into", "_sock_recv_into", "sock_recvfrom",
        "_sock_recvfrom", "sock_recvfrom_into", "_sock_recvfrom_into", "sock_sendall",
        "_sock_sendall", "sock_sendto", "_sock_sendto", "_sock_read_done",
        "_sock_write_done",
    ),
    _Unix: (
        "_check_signal", "_child_watcher_callback", "_handle_signal",
        "_make_read_pipe_transport", "_make_subprocess_transport",
        "_make_write_pipe_transport", "_process_self_data", "_sock_add_cancellation_callback",
        "_sock_sendfile_native", "_sock_sendfile_native_impl", "_sock_sendfile_update_filepos",
        "create_unix_connection", "create_unix_server", "remove_signal_handler",
    ),
}
for _cls, _names in _BORROWED.items():
    for _name in _names:
        _f = vars(_cls)[_name]
        _code = getattr(_f, "__code__", None)
        assert _code is None or "__class__" not in _code.co_freevars, _name
        setattr(EventLoop, _name, _f)
del _cls, _names, _name, _f, _code


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
