//! The errors of the stream readers: asyncio's `IncompleteReadError` and
//! `LimitOverrunError`, and [`ReadError`], what `readexactly` and `readuntil` return.

use std::fmt;
use std::io;

/// asyncio's `IncompleteReadError`: the stream ended before the requested data arrived.
/// `partial` holds what had been read (it is taken out of the reader's buffer).
///
/// ```
/// let e = aioloop::net::streams::IncompleteReadError { partial: b"ab".to_vec(), expected: Some(4) };
/// assert_eq!(e.to_string(), "2 bytes read on a total of 4 expected bytes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteReadError {
    /// The bytes read before the end of the stream.
    pub partial: Vec<u8>,
    /// How many bytes were expected (`None` for `readuntil`, which waited for a
    /// separator).
    pub expected: Option<usize>,
}

impl fmt::Display for IncompleteReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(n) => write!(
                f,
                "{} bytes read on a total of {n} expected bytes",
                self.partial.len()
            ),
            None => write!(
                f,
                "{} bytes read on a total of undefined expected bytes",
                self.partial.len()
            ),
        }
    }
}

impl std::error::Error for IncompleteReadError {}

/// asyncio's `LimitOverrunError`: a separator was not found within the reader's limit,
/// or it was found but the chunk before it is longer than the limit. Nothing is taken out
/// of the buffer; `consumed` says how many bytes to consume to get past the scanned part.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let r = aioloop::net::streams::StreamReader::with_limit(4);
///     r.feed_data(b"abcdefgh");
///     let e = r.readuntil(b"\n").await.unwrap_err();
///     let aioloop::net::streams::ReadError::LimitOverrun(e) = e else { panic!() };
///     assert_eq!(e.message, "Separator is not found, and chunk exceed the limit");
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOverrunError {
    /// asyncio's message: whether the separator was found.
    pub message: &'static str,
    /// How many bytes to consume to get past what was scanned.
    pub consumed: usize,
}

impl fmt::Display for LimitOverrunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for LimitOverrunError {}

/// What [`StreamReader::readexactly`](super::StreamReader::readexactly) and
/// [`StreamReader::readuntil`](super::StreamReader::readuntil) fail with. Converts into an
/// `io::Error` (kind `UnexpectedEof` or `InvalidData`, the typed error inside), so `?`
/// works in functions returning `io::Result`.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let r = aioloop::net::streams::StreamReader::new();
///     r.feed_data(b"ab");
///     r.feed_eof();
///     let e: std::io::Error = r.readexactly(3).await.unwrap_err().into();
///     assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The stream ended first.
    IncompleteRead(IncompleteReadError),
    /// The separator was not found within the limit.
    LimitOverrun(LimitOverrunError),
    /// The socket failed, or another task is already waiting on this reader (asyncio's
    /// `RuntimeError`, kind `Other`).
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::IncompleteRead(e) => e.fmt(f),
            ReadError::LimitOverrun(e) => e.fmt(f),
            ReadError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::IncompleteRead(e) => Some(e),
            ReadError::LimitOverrun(e) => Some(e),
            ReadError::Io(e) => Some(e),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::IncompleteRead(e) => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            ReadError::LimitOverrun(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            ReadError::Io(e) => e,
        }
    }
}
