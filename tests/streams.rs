//! Streams (`aioloop::net::streams`): asyncio's `StreamReader`/`StreamWriter`,
//! `open_connection`/`start_server` and their Unix twins, over TCP and Unix sockets, on the
//! runtime (2 workers) and on a `LocalLoop`. Reader semantics are ported from CPython's
//! `test_asyncio/test_streams.py` (each test names its original); a cancelled read loses
//! no bytes (rule N9); the writer's flow control is asyncio's (N10).

use std::future::{poll_fn, Future};
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aioloop::net::streams::{
    from_stream, open_connection, open_unix_connection, start_server, start_unix_server,
    IncompleteReadError, ReadError, StreamReader, StreamWriter, HIGH_WATER, LOW_WATER,
};

mod common;
use common::{guarded, new_loop, poll_once, runtime};

const DATA: &[u8] = b"line1\nline2\nline3\n";

/// Runs the test body made by `f` on a 2-worker runtime and on a `LocalLoop`, each under
/// the hang guard.
fn on_both<F, Fut>(what: &'static str, f: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let f = Arc::new(f);
    let g = f.clone();
    guarded(what, move || runtime(2).block_on(g()));
    guarded(what, move || new_loop().run_until_complete(f()).unwrap());
}

fn unix_path(tag: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("aioloop-streams-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// A connected pair of streams of the given transport: (client reader, client writer,
/// server reader, server writer), made through `start_server`/`open_connection` (or the
/// Unix twins); the server is returned too, to keep it alive.
async fn connected(
    unix: Option<&str>,
) -> (
    StreamReader,
    StreamWriter,
    StreamReader,
    StreamWriter,
    aioloop::net::streams::Server,
) {
    let (tx, rx) = futures_channel::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let cb = move |r, w| {
        if let Some(tx) = tx.lock().unwrap().take() {
            let _ = tx.send((r, w));
        }
        async {}
    };
    let (server, (cr, cw)) = match unix {
        Some(tag) => {
            let p = unix_path(tag);
            let server = start_unix_server(cb, &p).unwrap();
            (server, open_unix_connection(&p).await.unwrap())
        }
        None => {
            let server = start_server(cb, "127.0.0.1", 0).await.unwrap();
            let port = server.local_addrs()[0].as_socket().unwrap().port();
            (server, open_connection("127.0.0.1", port).await.unwrap())
        }
    };
    let (sr, sw) = rx.await.unwrap();
    (cr, cw, sr, sw, server)
}

fn transports() -> [Option<&'static str>; 2] {
    [None, Some("pair")]
}

// ---- the reader fed by hand (CPython's StreamTests) ----

/// test_feed_empty_data, test_feed_nonempty_data, test_read_zero, test_read_line_breaks,
/// test_read_limit.
#[test]
fn fed_reader_basics() {
    on_both("fed basics", || async {
        let r = StreamReader::new();
        r.feed_data(b"");
        assert_eq!(r.buffered(), 0);
        r.feed_data(DATA);
        assert_eq!(r.buffered(), DATA.len());
        assert_eq!(r.read(0).await.unwrap(), b"");
        assert_eq!(r.buffered(), DATA.len());

        let r = StreamReader::new();
        r.feed_data(b"line1");
        r.feed_data(b"line2");
        assert_eq!(r.read(5).await.unwrap(), b"line1");
        assert_eq!(r.buffered(), 5);

        let r = StreamReader::with_limit(3);
        r.feed_data(b"chunk");
        assert_eq!(r.read(5).await.unwrap(), b"chunk");
        assert_eq!(r.buffered(), 0);
    });
}

/// test_read, test_read_eof, test_read_until_eof, test_readline, test_readexactly: a read
/// waits for data fed by another task.
#[test]
fn fed_reader_waits_for_feed() {
    on_both("fed waits", || async {
        let r = Arc::new(StreamReader::new());
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.read(30).await.unwrap() });
        aioloop::sleep(Duration::from_millis(1)).await;
        r.feed_data(DATA);
        assert_eq!(t.await.unwrap(), DATA);
        assert_eq!(r.buffered(), 0);

        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.read(1024).await.unwrap() });
        aioloop::yield_now().await;
        r.feed_eof();
        assert_eq!(t.await.unwrap(), b"");

        let r = Arc::new(StreamReader::new());
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.read(-1).await.unwrap() });
        aioloop::yield_now().await;
        r.feed_data(b"chunk1\n");
        r.feed_data(b"chunk2");
        r.feed_eof();
        assert_eq!(t.await.unwrap(), b"chunk1\nchunk2");

        let r = Arc::new(StreamReader::new());
        r.feed_data(b"chunk1 ");
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.readline().await.unwrap() });
        aioloop::yield_now().await;
        r.feed_data(b"chunk2 ");
        r.feed_data(b"chunk3 ");
        r.feed_data(b"\n chunk4");
        assert_eq!(t.await.unwrap(), b"chunk1 chunk2 chunk3 \n");
        assert_eq!(r.buffered(), b" chunk4".len());
    });
}

/// test_readline_limit_with_existing_data, test_readline_limit, test_readline_nolimit_nowait,
/// test_readline_eof, test_readline_empty_eof, test_readline_read_byte_count, test_at_eof.
#[test]
fn readline_semantics() {
    on_both("readline", || async {
        let r = StreamReader::with_limit(3);
        r.feed_data(b"li");
        r.feed_data(b"ne1\nline2\n");
        assert_eq!(
            r.readline().await.unwrap_err().kind(),
            ErrorKind::InvalidData
        );
        assert_eq!(r.read(100).await.unwrap(), b"line2\n");

        let r = StreamReader::with_limit(3);
        r.feed_data(b"li");
        r.feed_data(b"ne1");
        r.feed_data(b"li");
        assert_eq!(
            r.readline().await.unwrap_err().kind(),
            ErrorKind::InvalidData
        );
        assert_eq!(r.buffered(), 0);

        let r = StreamReader::with_limit(7);
        r.feed_data(b"chunk1chunk2\nchunk3\n");
        r.feed_eof();
        assert!(r.readline().await.is_err());
        assert_eq!(r.read(-1).await.unwrap(), b"chunk3\n");

        // The limit is strict: 7 bytes plus the newline fit, 8 do not.
        let r = StreamReader::with_limit(7);
        r.feed_data(b"1234567\n");
        assert_eq!(r.readline().await.unwrap(), b"1234567\n");
        r.feed_data(b"12345678\n");
        assert!(r.readline().await.is_err());
        assert_eq!(r.buffered(), 0);
        r.feed_data(b"12345678");
        assert!(r.readline().await.is_err());
        assert_eq!(r.buffered(), 0);

        let r = StreamReader::new();
        r.feed_data(&DATA[..6]);
        r.feed_data(&DATA[6..]);
        assert_eq!(r.readline().await.unwrap(), b"line1\n");
        assert_eq!(r.read(7).await.unwrap(), b"line2\nl");
        assert_eq!(r.buffered(), 5);

        let r = StreamReader::new();
        assert!(!r.at_eof());
        r.feed_data(b"some data\n");
        assert!(!r.at_eof());
        r.readline().await.unwrap();
        assert!(!r.at_eof());
        r.feed_data(b"some data");
        r.feed_eof();
        assert_eq!(r.readline().await.unwrap(), b"some data");
        assert!(r.at_eof());
        assert_eq!(r.readline().await.unwrap(), b"");
    });
}

/// test_readuntil_separator, test_readuntil_multi_chunks, test_readuntil_multi_chunks_1,
/// test_readuntil_eof, test_readuntil_limit_found_sep.
#[test]
fn readuntil_semantics() {
    on_both("readuntil", || async {
        let r = StreamReader::new();
        match r.readuntil(b"").await {
            Err(ReadError::Io(e)) => assert_eq!(e.kind(), ErrorKind::InvalidInput),
            other => panic!("{other:?}"),
        }
        r.feed_data(b"lineAAA");
        assert_eq!(r.readuntil(b"AAA").await.unwrap(), b"lineAAA");
        r.feed_data(b"lineAAAxxx");
        assert_eq!(r.readuntil(b"AAA").await.unwrap(), b"lineAAA");
        assert_eq!(r.read(3).await.unwrap(), b"xxx");

        let r = Arc::new(StreamReader::new());
        r.feed_data(b"QWEaa");
        r.feed_data(b"XYaa");
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.readuntil(b"aaa").await.unwrap() });
        aioloop::yield_now().await;
        r.feed_data(b"a");
        assert_eq!(t.await.unwrap(), b"QWEaaXYaaa");
        for chunk in [&b"XXX"[..], b"a", b"a"] {
            r.feed_data(chunk);
        }
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.readuntil(b"aaa").await.unwrap() });
        aioloop::yield_now().await;
        r.feed_data(b"a");
        assert_eq!(t.await.unwrap(), b"XXXaaa");

        let r = StreamReader::new();
        r.feed_data(b"some dataAA");
        r.feed_eof();
        match r.readuntil(b"AAA").await {
            Err(ReadError::IncompleteRead(e)) => {
                assert_eq!(e.partial, b"some dataAA");
                assert_eq!(e.expected, None);
                assert!(e.to_string().contains("undefined expected bytes"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.buffered(), 0);

        let r = StreamReader::with_limit(3);
        r.feed_data(b"some dataAA");
        match r.readuntil(b"AAA").await {
            Err(ReadError::LimitOverrun(e)) => assert!(e.message.contains("not found")),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.buffered(), 11);
        r.feed_data(b"A");
        match r.readuntil(b"AAA").await {
            Err(ReadError::LimitOverrun(e)) => {
                assert!(e.message.contains("is found"));
                assert_eq!(e.consumed, 9);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.buffered(), 12);
    });
}

/// test_readexactly_zero_or_less, test_readexactly, test_readexactly_limit,
/// test_readexactly_eof.
#[test]
fn readexactly_semantics() {
    on_both("readexactly", || async {
        let r = Arc::new(StreamReader::new());
        r.feed_data(DATA);
        assert_eq!(r.readexactly(0).await.unwrap(), b"");
        assert_eq!(r.buffered(), DATA.len());
        assert_eq!(r.readexactly(DATA.len()).await.unwrap(), DATA);

        let n = 2 * DATA.len();
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.readexactly(n).await.unwrap() });
        aioloop::yield_now().await;
        for _ in 0..3 {
            r.feed_data(DATA);
        }
        assert_eq!(t.await.unwrap(), [DATA, DATA].concat());
        assert_eq!(r.buffered(), DATA.len());

        let r = StreamReader::with_limit(3);
        r.feed_data(b"chunk");
        assert_eq!(r.readexactly(5).await.unwrap(), b"chunk");

        let r = Arc::new(StreamReader::new());
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.readexactly(n).await });
        aioloop::yield_now().await;
        r.feed_data(DATA);
        r.feed_eof();
        match t.await.unwrap() {
            Err(ReadError::IncompleteRead(e)) => {
                assert_eq!(
                    e,
                    IncompleteReadError {
                        partial: DATA.to_vec(),
                        expected: Some(n)
                    }
                );
                assert_eq!(
                    e.to_string(),
                    "18 bytes read on a total of 36 expected bytes"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.buffered(), 0);
    });
}

/// test_read_exception, test_readline_exception, test_readexactly_exception,
/// test_exception, test_exception_waiter, test_exception_cancel.
#[test]
fn exceptions() {
    on_both("exceptions", || async {
        let r = StreamReader::new();
        assert!(r.exception().is_none());
        r.feed_data(b"line\n");
        assert_eq!(r.read(2).await.unwrap(), b"li");
        r.set_exception(std::io::Error::new(ErrorKind::InvalidInput, "value"));
        assert_eq!(r.read(2).await.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(
            r.readline().await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(matches!(r.readexactly(2).await, Err(ReadError::Io(_))));
        assert_eq!(r.exception().unwrap().kind(), ErrorKind::InvalidInput);

        // A waiting read is woken with the exception.
        let r = Arc::new(StreamReader::new());
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.readline().await });
        aioloop::yield_now().await;
        r.set_exception(ErrorKind::ConnectionReset.into());
        assert_eq!(
            t.await.unwrap().unwrap_err().kind(),
            ErrorKind::ConnectionReset
        );

        // A cancelled waiter is withdrawn: a new read can wait.
        let r = Arc::new(StreamReader::new());
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.readline().await });
        aioloop::yield_now().await;
        t.cancel(None);
        assert!(t.await.is_err());
        let r2 = r.clone();
        let t = aioloop::create_task(async move { r2.readline().await });
        aioloop::yield_now().await;
        r.feed_data(b"ok\n");
        assert_eq!(t.await.unwrap().unwrap(), b"ok\n");
    });
}

/// asyncio's `_wait_for_data` RuntimeError: a second task waiting on one reader fails with
/// `Other` and asyncio's message; the first keeps waiting and gets the data.
#[test]
fn a_second_waiter_is_refused() {
    on_both("second waiter", || async {
        let r = StreamReader::new();
        let mut first = Box::pin(r.readline());
        assert!(poll_once(&mut first).is_pending(), "the first read waits");
        let e = r.readexactly(3).await.unwrap_err();
        let e: std::io::Error = e.into();
        assert_eq!(e.kind(), ErrorKind::Other);
        assert!(e
            .to_string()
            .contains("readexactly() called while another coroutine"));
        r.feed_data(b"x\n");
        assert_eq!(first.await.unwrap(), b"x\n");
    });
}

/// futures-io's `AsyncBufRead` and `AsyncRead` on the reader use its buffer.
#[test]
fn async_buf_read() {
    use futures_io::{AsyncBufRead, AsyncRead};
    on_both("bufread", || async {
        let mut r = StreamReader::new();
        r.feed_data(b"abcdef");
        let got = poll_fn(|cx| {
            Pin::new(&mut r)
                .poll_fill_buf(cx)
                .map(|b| b.map(<[u8]>::to_vec))
        })
        .await
        .unwrap();
        assert_eq!(got, b"abcdef");
        Pin::new(&mut r).consume(2);
        let mut buf = [0u8; 3];
        let n = poll_fn(|cx| Pin::new(&mut r).poll_read(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"cde");
        assert_eq!(r.readexactly(1).await.unwrap(), b"f");
    });
}

// ---- over sockets ----

/// test_open_connection, test_open_unix_connection, test_start_server,
/// test_start_unix_server: an echo server answering lines, over TCP and Unix, on both loop
/// kinds.
#[test]
fn echo_server_tcp_and_unix() {
    on_both("echo", || async {
        for (i, unix) in [None, Some("echo")].into_iter().enumerate() {
            let echo = |r: StreamReader, w: StreamWriter| async move {
                loop {
                    let line = r.readline().await.unwrap();
                    if line.is_empty() {
                        break;
                    }
                    w.write(&line).unwrap();
                    w.drain().await.unwrap();
                }
                w.close();
                w.wait_closed().await.unwrap();
            };
            let path = unix_path(&format!("echo{i}"));
            let server = match unix {
                None => start_server(echo, "127.0.0.1", 0).await.unwrap(),
                Some(_) => start_unix_server(echo, &path).unwrap(),
            };
            let (r, w) = match unix {
                None => {
                    let port = server.local_addrs()[0].as_socket().unwrap().port();
                    open_connection("127.0.0.1", port).await.unwrap()
                }
                Some(_) => open_unix_connection(&path).await.unwrap(),
            };
            for n in 0..10 {
                let msg = format!("message {n}\n");
                w.write(msg.as_bytes()).unwrap();
                assert_eq!(r.readline().await.unwrap(), msg.as_bytes());
            }
            assert!(w.peername().is_ok() && w.sockname().is_ok());
            w.write_eof().unwrap();
            assert_eq!(r.read(-1).await.unwrap(), b"");
            assert!(r.at_eof());
            drop((r, w));
            server.close();
            server.wait_closed().await;
            assert!(!path.exists());
        }
    });
}

/// N9: a `readexactly` cancelled by a timeout after part of the data arrived loses none of
/// it: the next `readexactly` returns the whole message. Then the same with a task
/// cancelled from outside (`Task::cancel`), and through `catch_cancel`.
#[test]
fn n9_cancelled_read_loses_no_bytes() {
    on_both("cancelled read", || async {
        for unix in transports() {
            let (_cr, cw, sr, _sw, _server) = connected(unix).await;
            cw.write(b"01234").unwrap();
            cw.drain().await.unwrap();
            let r = aioloop::timeout(Duration::from_millis(20), sr.readexactly(10)).await;
            assert!(r.is_err(), "no 10 bytes yet: the timeout fires");
            cw.write(b"56789").unwrap();
            assert_eq!(sr.readexactly(10).await.unwrap(), b"0123456789");

            // Cancelled from outside while waiting.
            let sr = Arc::new(sr);
            let sr2 = sr.clone();
            let t = aioloop::create_task(async move { sr2.readexactly(6).await });
            cw.write(b"abc").unwrap();
            // Let the reader take the three bytes in, then cancel it.
            while sr.buffered() < 3 {
                aioloop::sleep(Duration::from_millis(1)).await;
            }
            t.cancel(None);
            assert!(t.await.is_err());
            cw.write(b"def").unwrap();
            assert_eq!(sr.readexactly(3).await.unwrap(), b"abc");

            // catch_cancel: the cancelled read's future is dropped, its bytes stay.
            let sr2 = sr.clone();
            let t = aioloop::create_task(async move {
                let got = aioloop::catch_cancel(sr2.readline()).await;
                (got.is_err(), sr2.buffered())
            });
            aioloop::sleep(Duration::from_millis(5)).await;
            t.cancel(None);
            let (cancelled, _) = t.await.unwrap();
            assert!(cancelled);
            assert_eq!(sr.readexactly(3).await.unwrap(), b"def");
        }
    });
}

/// N10: `write` above the high-water mark pauses the writer: `drain` waits until the peer
/// has read enough to bring the buffer back to the low-water mark. A 16 MiB transfer goes
/// through intact, on both transports.
#[test]
fn n10_drain_backpressure_and_16_mib() {
    on_both("backpressure", || async {
        for unix in transports() {
            let (_cr, cw, sr, _sw, _server) = connected(unix).await;
            let block: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
            cw.write(&block).unwrap();
            let mut drain = Box::pin(cw.drain());
            if cw.write_buffer_size() > HIGH_WATER {
                // Nobody reads yet and the buffer is above the mark: drain must wait.
                assert!(poll_once(&mut drain).is_pending());
            }
            let reader = aioloop::create_task(async move {
                let mut total = 0usize;
                let mut ok = true;
                while total < 16 << 20 {
                    let chunk = sr.read(65536).await.unwrap();
                    assert!(!chunk.is_empty());
                    for (k, b) in chunk.iter().enumerate() {
                        ok &= *b == ((total + k) % (1 << 20) % 251) as u8;
                    }
                    total += chunk.len();
                }
                (total, ok)
            });
            drain.await.unwrap();
            assert!(cw.write_buffer_size() <= LOW_WATER);
            for _ in 1..16 {
                cw.write(&block).unwrap();
                cw.drain().await.unwrap();
            }
            assert_eq!(reader.await.unwrap(), (16 << 20, true));
        }
    });
}

/// test_multiple_drain: several tasks draining one paused writer all return.
#[test]
fn multiple_drains() {
    on_both("multiple drain", || async {
        for unix in transports() {
            let (_cr, cw, sr, _sw, _server) = connected(unix).await;
            let cw = Arc::new(cw);
            cw.write(&vec![1u8; 4 << 20]).unwrap();
            let drains: Vec<_> = (0..3)
                .map(|_| {
                    let w = cw.clone();
                    aioloop::create_task(async move { w.drain().await })
                })
                .collect();
            let reader =
                aioloop::create_task(async move { sr.readexactly(4 << 20).await.map(|v| v.len()) });
            for d in drains {
                d.await.unwrap().unwrap();
            }
            assert_eq!(reader.await.unwrap().unwrap(), 4 << 20);
        }
    });
}

/// test_drain_raises, N6: once the peer is gone, writing and draining ends in an error
/// (`ConnectionReset`/`BrokenPipe`), never a hang.
#[test]
fn drain_raises_once_peer_is_gone() {
    on_both("drain raises", || async {
        for unix in transports() {
            let (cr, cw, sr, sw, server) = connected(unix).await;
            drop((sr, sw, server));
            let mut err = None;
            for _ in 0..10_000 {
                cw.write(&[0u8; 4096]).unwrap();
                if let Err(e) = cw.drain().await {
                    err = Some(e);
                    break;
                }
                aioloop::yield_now().await;
            }
            let e = err.expect("drain fails once the peer is gone");
            assert!(
                matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                "{e:?}"
            );
            assert!(cw.wait_closed().await.is_err());
            drop(cr);
        }
    });
}

/// test_wait_closed_on_close, test_wait_closed_on_close_with_unread_data,
/// test_async_writer_api_exception_after_close, test_eof_feed_when_closing_writer: after
/// `close`, `wait_closed` returns, the own reader reads EOF, the peer reads EOF after
/// the buffered data, and a write is dropped while `drain` says "Connection lost".
#[test]
fn close_and_wait_closed() {
    on_both("close", || async {
        for unix in transports() {
            let (cr, cw, sr, sw, _server) = connected(unix).await;
            sw.write(b"unread").unwrap();
            cw.write(b"last words").unwrap();
            cw.close();
            assert!(cw.is_closing());
            cw.wait_closed().await.unwrap();
            assert_eq!(sr.read(-1).await.unwrap(), b"last words");
            // What the peer sent before the close may or may not have been read; the
            // reader ends either way.
            let rest = cr.read(-1).await.unwrap();
            assert!(rest.is_empty() || rest == b"unread");
            assert!(cr.at_eof());
            cw.write(b"data").unwrap();
            let e = cw.drain().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionReset);
        }
    });
}

/// test_open_connection_error, test_open_unix_connection_error, N6: a refused connection
/// and a missing socket file are errors.
#[test]
fn connection_errors() {
    on_both("connect errors", || async {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = open_connection("127.0.0.1", port).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        let e = open_unix_connection(unix_path("missing"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(open_connection("no-such-host.invalid", 80).await.is_err());
    });
}

/// A server on a free port and a task in its `serve_forever`, which has started (its
/// first poll) when this returns.
async fn serving_forever() -> (
    Arc<aioloop::net::streams::Server>,
    aioloop::Task<std::io::Result<()>>,
) {
    let server = Arc::new(
        start_server(|_r, _w| async {}, "127.0.0.1", 0)
            .await
            .unwrap(),
    );
    let s2 = server.clone();
    let (started, is_started) = futures_channel::oneshot::channel();
    let t = aioloop::create_task(async move {
        let mut serving = Box::pin(s2.serve_forever());
        assert!(poll_once(&mut serving).is_pending());
        let _ = started.send(());
        serving.await
    });
    is_started.await.unwrap();
    (server, t)
}

/// `serve_forever` returns once the server is closed; dropped (its task cancelled), it
/// closes the server; a closed server refuses to serve again.
#[test]
fn serve_forever_and_scope() {
    on_both("serve_forever", || async {
        let (server, t) = serving_forever().await;
        server.close();
        t.await.unwrap().unwrap();
        assert!(server.serve_forever().await.is_err());

        let (server, t) = serving_forever().await;
        t.cancel(None);
        assert!(t.await.is_err());
        assert!(!server.is_serving());
        server.wait_closed().await;

        // `scope` (asyncio's `async with server`) waits for the connections to end.
        let server = start_server(
            |r, w| async move {
                let line = r.readline().await.unwrap();
                w.write(&line).unwrap();
                w.close();
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addrs()[0].as_socket().unwrap().port();
        let got = server
            .scope(async {
                let (r, w) = open_connection("127.0.0.1", port).await.unwrap();
                w.write(b"scoped\n").unwrap();
                r.readline().await.unwrap()
            })
            .await;
        assert_eq!(got, b"scoped\n");
        assert!(open_connection("127.0.0.1", port).await.is_err());
    });
}

/// Many clients at once through one server, each on its own task.
#[test]
fn many_clients() {
    on_both("many clients", || async {
        let server = start_server(
            |r, w| async move {
                while let Ok(line) = r.readline().await {
                    if line.is_empty() {
                        break;
                    }
                    w.write(&line).unwrap();
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addrs()[0].as_socket().unwrap().port();
        let clients: Vec<_> = (0..50)
            .map(|i| {
                aioloop::create_task(async move {
                    let (r, w) = open_connection("127.0.0.1", port).await.unwrap();
                    for k in 0..20 {
                        let msg = format!("{i}:{k}\n");
                        w.write(msg.as_bytes()).unwrap();
                        assert_eq!(r.readline().await.unwrap(), msg.as_bytes());
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        server.close();
        server.wait_closed().await;
    });
}

/// `from_stream` wraps a socket made elsewhere.
#[test]
fn from_stream_wraps_a_socket_pair() {
    on_both("from_stream", || async {
        let (a, b) = aioloop::net::unix::UnixStream::pair().unwrap();
        let (ra, wa) = from_stream(a, 16);
        let (rb, wb) = from_stream(b, 16);
        wa.write(b"ping\n").unwrap();
        assert_eq!(rb.readline().await.unwrap(), b"ping\n");
        wb.write(b"0123456789abcdefXYZ\n").unwrap();
        assert_eq!(
            ra.readline().await.unwrap_err().kind(),
            ErrorKind::InvalidData
        );
    });
}

/// A writer used from a thread that runs no loop buffers what it writes; `drain` on a loop
/// sends it (the socket registers its wait there, rule N3).
#[test]
fn write_from_a_plain_thread_then_drain_on_a_loop() {
    guarded("plain thread write", || {
        let rt = runtime(2);
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (a, b) = (
            aioloop::net::unix::UnixStream::from_std(a).unwrap(),
            aioloop::net::unix::UnixStream::from_std(b).unwrap(),
        );
        let (_ra, wa) = from_stream(a, 1024);
        let (rb, _wb) = from_stream(b, 1024);
        wa.write(b"from a plain thread\n").unwrap();
        assert_eq!(wa.write_buffer_size(), 20);
        rt.block_on(async {
            wa.write(b"and a loop\n").unwrap();
            wa.close();
            wa.wait_closed().await.unwrap();
            assert_eq!(
                rb.read(-1).await.unwrap(),
                b"from a plain thread\nand a loop\n"
            );
        });
    });
}
