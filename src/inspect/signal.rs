//! `Builder::dump_on_signal`: the runtime's task dump written to stderr when the process
//! receives a signal (`kill -USR1 <pid>`), like `python -m asyncio ps <pid>` from inside.
//!
//! Self-contained on purpose (one file, so that a later signal module can absorb it): the
//! handler, registered through `signal-hook-registry` (which chains with other handlers),
//! only `write`s one byte to a non-blocking self-pipe — the one async-signal-safe thing
//! it needs. A thread of ours blocks on the pipe's read end and, per byte, renders the
//! dump (registry walk, formatting: nothing a signal handler may do) and writes it to
//! stderr. Dropping the runtime unregisters the handler (signal-hook-registry waits for a
//! running handler before it returns), then closes the write end: the thread reads
//! end-of-file and exits.

use std::io;

use crate::runtime::Builder;

impl Builder {
    /// Writes this runtime's task dump ([`Handle::dump`](crate::Handle::dump)) to stderr
    /// each time the process receives `signal` (e.g. `libc::SIGUSR1`; rule O7). Turns
    /// task tracking on (creation sites, poll counts, ages in the dump). Unix only; the
    /// registration happens in [`build`](Builder::build), which fails with the OS error
    /// if the signal cannot be handled (`SIGKILL`, `SIGSTOP`, an invalid number).
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// const SIGUSR1: i32 = 10; // libc::SIGUSR1 on Linux
    /// let rt = aioloop::Runtime::builder().workers(1).dump_on_signal(SIGUSR1).build()?;
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(unix)]
    pub fn dump_on_signal(self, signal: i32) -> Builder {
        self.track_tasks(true)
            .on_build(move |handle| imp::install(signal, handle.id()).map(|g| Box::new(g) as _))
    }
}

#[cfg(unix)]
mod imp {
    use super::io;
    use crate::task::LoopId;
    use std::os::fd::RawFd;

    /// Unregisters the handler and stops the thread when dropped (with the runtime).
    pub(super) struct Guard {
        id: signal_hook_registry::SigId,
        write_end: RawFd,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            // After this returns no handler runs with our closure (it waits for one that
            // is running), so the write end can be closed: the thread sees end-of-file.
            signal_hook_registry::unregister(self.id);
            // SAFETY: our own descriptor, closed once, and no handler can write to it now.
            unsafe { libc::close(self.write_end) };
            // A signal that arrived before the drop still gets its dump written.
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    pub(super) fn install(signal: i32, loop_id: LoopId) -> io::Result<Guard> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let [read_end, write_end] = fds;
        // A full pipe must not block the handler: a dump is already pending then.
        // SAFETY: plain fcntl calls on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(write_end, libc::F_GETFL);
            libc::fcntl(write_end, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let close_both = || {
            // SAFETY: our descriptors, not shared with anyone yet.
            unsafe {
                libc::close(read_end);
                libc::close(write_end);
            }
        };
        let action = move || {
            // SAFETY: `write` is async-signal-safe; the descriptor stays open until the
            // handler is unregistered (`Guard::drop`). A failed write (pipe full) drops
            // a redundant request.
            unsafe { libc::write(write_end, b"!".as_ptr().cast(), 1) };
        };
        // SAFETY: the action only calls `write` (async-signal-safe), allocates nothing and
        // takes no lock.
        let id = match unsafe { signal_hook_registry::register(signal, action) } {
            Ok(id) => id,
            Err(e) => {
                close_both();
                return Err(e);
            }
        };
        let spawned = std::thread::Builder::new()
            .name("aioloop-dump".into())
            .spawn(move || reader(read_end, loop_id));
        match spawned {
            Ok(thread) => Ok(Guard {
                id,
                write_end,
                thread: Some(thread),
            }),
            Err(e) => {
                signal_hook_registry::unregister(id);
                close_both();
                Err(e)
            }
        }
    }

    fn reader(read_end: RawFd, loop_id: LoopId) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into our own buffer from our own descriptor.
            let n = unsafe { libc::read(read_end, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                let text = super::super::dump::dump_loop(loop_id);
                // One write per dump, as `eprint!` would, but without its panic on error.
                use std::io::Write;
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break; // end-of-file: the runtime is gone
            }
        }
        // SAFETY: our descriptor, closed once, by its only user.
        unsafe { libc::close(read_end) };
    }
}
