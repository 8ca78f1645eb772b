//! Unix signals as asyncio delivers them: [`ctrl_c`], the [`Signal`] stream
//! ([`signal`]`(SignalKind::…)`), and `add_signal_handler`/`remove_signal_handler` on
//! [`LocalLoop`](crate::LocalLoop) and [`Handle`](crate::Handle).
//!
//! One mechanism serves them all, and `Builder::dump_on_signal` too (`pipe.rs`): each
//! listener registers an action with `signal-hook-registry` (which chains with any other
//! handler in the process) that only `write`s one byte to the listener's own non-blocking
//! socket pair — async-signal-safe, no allocation, no lock. The read end is what a loop
//! watches: a [`Signal`] waits on it as an [`Async`](crate::io::Async) source, a loop
//! handler is an `add_reader` callback on it (so the callback runs on the loop, as asyncio
//! runs it through `call_soon`), and the dump thread blocks on it. Deliveries that arrive
//! while nobody reads coalesce, as asyncio's do.
//!
//! Unregistering waits for a running handler before it returns, and only then is the
//! write end closed. A signal that had no handler before keeps signal-hook-registry's
//! handler after the last listener is gone: it is then ignored rather than taking its
//! default action (signal-hook-registry cannot restore the default; tokio behaves alike).
//!
//! Owns: the listeners' registrations and the loops' handler table (`loop_api.rs`). May
//! import: the loop core (readiness direction), `io` (`Async`, `add_reader`).

mod error;
mod loop_api;
mod pipe;
mod stream;

pub use error::SignalError;
pub(crate) use pipe::Registration;
pub use stream::{ctrl_c, signal, Signal, SignalKind};
