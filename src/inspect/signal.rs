//! `Builder::dump_on_signal`: the runtime's task dump written to stderr when the process
//! receives a signal (`kill -USR1 <pid>`), like `python -m asyncio ps <pid>` from inside.
//!
//! The handler is the signal module's one mechanism (`signal::Registration`: a
//! signal-hook-registry action that `write`s one byte to a socket pair). A thread of ours
//! blocks on the read end and, per wake-up, renders the dump (registry walk, formatting:
//! nothing a signal handler may do) and writes it to stderr. Dropping the runtime drops the
//! registration (the action is unregistered, waiting for a running one, then the write end
//! is closed): the thread reads end-of-file and exits.

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
    use crate::signal::Registration;
    use crate::task::LoopId;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    /// Unregisters the handler and stops the thread when dropped (with the runtime).
    pub(super) struct Guard {
        reg: Option<Registration>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            // Unregisters the action (waiting for a running one), then closes the write
            // end: the thread reads end-of-file.
            drop(self.reg.take());
            // A signal that arrived before the drop still gets its dump written.
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    pub(super) fn install(signal: i32, loop_id: LoopId) -> io::Result<Guard> {
        let (reg, read_end) = Registration::new(signal)?;
        // The thread blocks on it; the write end stays non-blocking for the handler.
        read_end.set_nonblocking(false)?;
        let thread = std::thread::Builder::new()
            .name("aioloop-dump".into())
            .spawn(move || reader(read_end, loop_id))?;
        Ok(Guard {
            reg: Some(reg),
            thread: Some(thread),
        })
    }

    fn reader(mut read_end: UnixStream, loop_id: LoopId) {
        let mut buf = [0u8; 64];
        loop {
            match read_end.read(&mut buf) {
                Ok(0) => break, // end-of-file: the runtime is gone
                Ok(_) => {
                    let text = super::super::dump::dump_loop(loop_id);
                    // One write per dump, as `eprint!` would, but without its panic on error.
                    use std::io::Write;
                    let _ = std::io::stderr().lock().write_all(text.as_bytes());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
}
