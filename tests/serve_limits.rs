//! Slow and greedy clients against a real `vaxlake serve` (issue 19, section 3): a silent
//! connection, headers and a body trickled byte by byte, oversized bodies and headers,
//! thousands of idle connections and a large answer nobody reads. Each must end with the
//! server's connections and memory bounded, and the server still answering.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One small warehouse for every test of this file (each starts its own server).
fn warehouse() -> &'static Path {
    static WAREHOUSE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &WAREHOUSE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let wh = generated_warehouse(dir.path(), 300, 19, &["fhir"]);
            (dir, wh)
        })
        .1
}

/// The server's resident memory in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The server's open sockets (file descriptors that are sockets).
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection (or resets it); returns what came and how
/// long it took. Fails after 20 s of silence.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("the server kept the connection open: {error}"),
        }
    }
    (got, started.elapsed())
}

/// The status of a raw HTTP/1.1 answer.
fn status_of(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:.200}"))
}

/// Asserts the status of a raw HTTP/1.1 answer, showing the answer when it is not.
fn assert_status(answer: &[u8], expected: u16) {
    assert_eq!(
        status_of(answer),
        expected,
        "{}",
        String::from_utf8_lossy(answer)
    );
}

fn health_ok(port: u16) -> bool {
    http_get(port, "/api/health").is_some_and(|(status, _)| status == 200)
}

/// A connection that sends nothing, and one that sends its headers a byte at a time, are
/// closed after the header timeout; the server answers others meanwhile.
#[test]
fn silent_and_slow_header_connections_are_closed() {
    let server = serve(warehouse(), &["--header-timeout-secs", "2"]);
    let port = server.port;

    let mut silent = connect(port);
    let trickler = std::thread::spawn(move || {
        let mut stream = connect(port);
        let head = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let started = Instant::now();
        let mut sent = 0;
        for byte in head {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        (sent, started.elapsed(), read_until_closed(&mut stream).0)
    });
    assert!(health_ok(port), "the server stopped answering others");
    let (got, waited) = read_until_closed(&mut silent);
    assert!(got.is_empty() || status_of(&got) == 408, "{got:?}");
    assert!(
        waited < Duration::from_secs(6),
        "a silent connection was held for {waited:?}"
    );
    let (sent, elapsed, got) = trickler.join().unwrap();
    assert!(
        sent < 60 && elapsed < Duration::from_secs(8),
        "a slow sender sent {sent} header bytes over {elapsed:?} without being cut"
    );
    assert!(got.is_empty() || status_of(&got) == 408, "{got:?}");
    assert!(health_ok(port));
}

/// A body trickled byte by byte is cut at the body timeout with 408 and a JSON reason, the
/// connection closed, and the request is in the audit.
#[test]
fn a_trickled_body_is_cut_at_the_body_timeout() {
    let mut server = serve(warehouse(), &["--body-timeout-secs", "2"]);
    let port = server.port;
    let body = br#"{"sql": "SELECT count(*) FROM vaccinations"}"#;
    let mut stream = connect(port);
    write!(
        stream,
        "POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let reader = stream.try_clone().unwrap();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut sent = 0;
        for byte in body {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(250));
        }
        sent
    });
    let mut reader = reader;
    let (answer, _) = read_until_closed(&mut reader);
    let elapsed = started.elapsed();
    let sent = sender.join().unwrap();
    // The audit layer reads `/api/sql` bodies itself (to record the SQL): it answers the
    // body timeout 408 as `/api/sql` would.
    let status = 408;
    assert_status(&answer, status);
    assert!(
        String::from_utf8_lossy(&answer).contains("\"error\""),
        "no JSON reason: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        elapsed < Duration::from_secs(6) && sent < body.len(),
        "the body took {elapsed:?} ({sent} of {} bytes) before the cut",
        body.len()
    );
    assert!(health_ok(port));
    assert!(server.terminate().success());
    let audit = ok(&[
        "audit",
        "--warehouse",
        warehouse().to_str().unwrap(),
        "--endpoint",
        "/api/sql",
        "--format",
        "json",
    ])
    .0;
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let statuses = audit_column(&audit, "status");
    assert!(
        statuses
            .iter()
            .any(|recorded| recorded.as_u64() == Some(u64::from(status))),
        "the {status} is not in the audit: {audit}"
    );
}

/// The values of one column of `vaxlake audit --format json` (columns + rows).
fn audit_column(answer: &serde_json::Value, name: &str) -> Vec<serde_json::Value> {
    let columns = answer["columns"].as_array().expect("columns");
    let index = columns
        .iter()
        .position(|column| column == name)
        .unwrap_or_else(|| panic!("no column {name}: {answer}"));
    answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row[index].clone())
        .collect()
}

/// Bodies over 1 MiB (announced or chunked), a 100 KiB header and 200 headers are refused
/// (413, 431) without the server growing: 40 refused 8 MiB bodies cost it less than 128 MiB.
#[test]
fn oversized_bodies_and_headers_are_refused() {
    let server = serve(warehouse(), &[]);
    let port = server.port;

    // An 8 MiB body, written by another thread (the server stops reading it at 1 MiB).
    let announced = |stream: &mut TcpStream| {
        let mut writer = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = write!(
                writer,
                "POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                8 << 20
            );
            let _ = writer.write_all(&vec![b' '; 8 << 20]);
        });
    };
    let mut stream = connect(port);
    announced(&mut stream);
    let answer = read_until_closed_or_answered(&mut stream);
    assert_status(&answer, 413);

    // A chunked body with no length, 3 MiB in 64 KiB chunks: cut at 1 MiB.
    let mut stream = connect(port);
    write!(
        stream,
        "POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 64 << 10];
    for _ in 0..48 {
        if write!(stream, "{:x}\r\n", chunk.len()).is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let answer = read_until_closed_or_answered(&mut stream);
    assert_status(&answer, 413);

    // One 100 KiB header, then 200 small ones.
    let mut stream = connect(port);
    let big = "a".repeat(100 << 10);
    let _ = write!(
        stream,
        "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n"
    );
    let answer = read_until_closed_or_answered(&mut stream);
    assert_status(&answer, 431);
    let mut stream = connect(port);
    let many: String = (0..200).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let _ = write!(
        stream,
        "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n"
    );
    let answer = read_until_closed_or_answered(&mut stream);
    assert_status(&answer, 431);

    // 40 announced 8 MiB bodies at once: refused, and the server does not keep them.
    let before = rss_kib(server.pid());
    let clients: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = connect(port);
                announced(&mut stream);
                status_of(&read_until_closed_or_answered(&mut stream))
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 413);
    }
    let after = rss_kib(server.pid());
    eprintln!("oversized bodies: server RSS {before} KiB before, {after} KiB after 40 refused 8 MiB bodies");
    assert!(
        after < before + 128 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert!(health_ok(port));
}

/// 2000 idle connections against `--max-connections 200`: the server holds at most 200
/// sockets (plus its own), closes the rest at once, stays within 64 MiB of its memory
/// before, closes the admitted idle ones at the header timeout, and then answers again.
#[test]
fn thousands_of_idle_connections_are_bounded() {
    const IDLE: usize = 2000;
    const LIMIT: usize = 200;
    let server = serve(
        warehouse(),
        &[
            "--max-connections",
            &LIMIT.to_string(),
            "--header-timeout-secs",
            "4",
        ],
    );
    let port = server.port;
    let pid = server.pid();
    let sockets_before = open_sockets(pid);
    let rss_before = rss_kib(pid);
    let started = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    let mut not_connected = 0;
    for _ in 0..IDLE {
        match TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        ) {
            Ok(stream) => idle.push(stream),
            Err(_) => not_connected += 1,
        }
    }
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let sockets_held = open_sockets(pid);
    let rss_held = rss_kib(pid);
    // Which connections did the server close at once? A closed one reads EOF (or a reset)
    // immediately; an admitted idle one times out the short read.
    let mut closed_at_once = 0;
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => closed_at_once += 1,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                closed_at_once += 1
            }
            _ => {}
        }
    }
    eprintln!(
        "idle connections: {} connected ({not_connected} not) in {opened:?}; server sockets {sockets_before} -> {sockets_held}; \
         closed at once {closed_at_once}; RSS {rss_before} -> {rss_held} KiB",
        idle.len()
    );
    assert!(
        sockets_held <= sockets_before + LIMIT,
        "the server holds {sockets_held} sockets (had {sockets_before}, limit {LIMIT})"
    );
    assert!(
        closed_at_once + not_connected >= IDLE - LIMIT,
        "only {closed_at_once} of the connections over the limit were closed"
    );
    assert!(
        rss_held < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_held} KiB"
    );
    // The admitted idle connections go at the header timeout, and others are served again.
    let until = Instant::now() + Duration::from_secs(15);
    while !health_ok(port) {
        assert!(
            Instant::now() < until,
            "the server did not answer again after the idle connections' header timeout"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The idle connections' sockets go as their header timeouts pass (on a loaded machine not
    // all in the same instant as the first answer).
    let until = Instant::now() + Duration::from_secs(15);
    while open_sockets(pid) > sockets_before + 8 {
        assert!(
            Instant::now() < until,
            "the server still holds {} sockets (had {sockets_before})",
            open_sockets(pid)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
}

/// Large answers held by clients that do not read: each keeps its query's place (a third
/// query is answered 429, not buffered), the server's memory stays bounded, and after the
/// send timeout the stalled connections are closed and queries are answered again, the
/// whole answer (1,000,000 rows, cut from 10M by --max-rows) for a client that reads.
#[test]
fn a_large_answer_to_a_slow_reader_is_bounded() {
    const ROWS: usize = 1_000_000;
    let server = serve(
        warehouse(),
        &[
            "--max-rows",
            &ROWS.to_string(),
            "--max-concurrent-queries",
            "2",
            "--send-timeout-secs",
            "3",
        ],
    );
    let port = server.port;
    let pid = server.pid();
    let rss_before = rss_kib(pid);
    let query = serde_json::json!({
        "sql": "SELECT value, value * 2 AS twice, 'row ' || CAST(value AS VARCHAR) AS label FROM generate_series(1, 10000000)"
    })
    .to_string();
    let ask = |stream: &mut TcpStream| {
        write!(
            stream,
            "POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: text/csv\r\nContent-Length: {}\r\n\r\n{query}",
            query.len()
        )
        .unwrap();
    };
    // Two clients ask and read only the first bytes of their answers.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(port);
        ask(&mut stream);
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).unwrap();
        assert_eq!(status_of(&first), 200);
        stalled.push(stream);
    }
    // Both answers wait in the server with their places: a third query is refused.
    let mut third = connect(port);
    ask(&mut third);
    let answer = read_until_closed_or_answered(&mut third);
    assert_status(&answer, 429);
    let rss_held = rss_kib(pid);
    eprintln!("slow readers: RSS {rss_before} KiB before, {rss_held} KiB with two answers held");
    assert!(
        rss_held < rss_before + 512 * 1024,
        "RSS grew from {rss_before} KiB to {rss_held} KiB"
    );
    // After the send timeout the stalled connections are closed and their places freed.
    let started = Instant::now();
    let full = loop {
        let mut stream = connect(port);
        ask(&mut stream);
        let answer = read_until_closed_or_answered(&mut stream);
        if status_of(&answer) == 200 {
            break answer;
        }
        assert_eq!(status_of(&answer), 429);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stalled answers kept their places"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("stalled answers released after {:?}", started.elapsed());
    let text = String::from_utf8_lossy(&full);
    let body = &text[text.find("\r\n\r\n").expect("a head") + 4..];
    assert!(text
        .to_ascii_lowercase()
        .contains("x-vaxlake-truncated: true"));
    // Header line + ROWS rows (the body is chunked: count the rows' own lines).
    let rows = body
        .lines()
        .filter(|line| line.starts_with(|c: char| c.is_ascii_digit()) && line.contains(",row "))
        .count();
    assert_eq!(rows, ROWS);
    for mut stream in stalled {
        let (_, waited) = read_until_closed(&mut stream);
        assert!(waited < Duration::from_secs(20));
    }
    let rss_after = rss_kib(pid);
    eprintln!("slow readers: RSS {rss_after} KiB after");
    assert!(health_ok(port));
}

/// Reads a whole HTTP/1.1 answer: until the connection closes, or the end of a chunked or
/// sized body.
fn read_until_closed_or_answered(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
            let body = &got[head_end + 4..];
            if let Some(length) = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|length| length.trim().parse::<usize>().ok())
            {
                if body.len() >= length {
                    break;
                }
            } else if head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n") {
                break;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("no answer: {error}"),
        }
    }
    got
}
