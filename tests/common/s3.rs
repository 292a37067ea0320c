//! An S3-compatible server on loopback for the tests of warehouses on object storage: moto in
//! server mode (PyPI, installed by `scripts/python-env`), one per test binary, a bucket per
//! test. Real HTTP requests, signed by the same clients production uses; not an in-process
//! mock.
//!
//! The server is a child of the test process that stops when its standard input closes, so
//! it never outlives the tests, whichever way they end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::doors::free_port;

/// The running server: its port, and the child kept alive (its stdin held open).
pub struct Moto {
    pub port: u16,
    _child: Mutex<Child>,
}

/// The server of this test binary, started on first use with the AWS variables of the
/// process set for it (children inherit them); `None` (test skipped, loudly) without the
/// tests' Python.
pub fn server(test: &str) -> Option<&'static Moto> {
    static SERVER: OnceLock<Moto> = OnceLock::new();
    let python = super::cross_check_python(test)?;
    Some(SERVER.get_or_init(|| start(&python)))
}

fn start(python: &str) -> Moto {
    let port = free_port();
    let script = format!(
        "import sys\n\
         from moto.server import ThreadedMotoServer\n\
         server = ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False)\n\
         server.start()\n\
         print('ready', flush=True)\n\
         sys.stdin.read()\n\
         server.stop()\n"
    );
    let mut child = Command::new(python)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts (scripts/python-env installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "moto did not start");
    // Set once, before any child that reads them is started.
    std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    std::env::set_var("AWS_ACCESS_KEY_ID", "vaxlake-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "vaxlake-test-secret");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    Moto {
        port,
        _child: Mutex::new(child),
    }
}

impl Moto {
    /// Creates the bucket `name` (S3 CreateBucket) and returns `s3://name/warehouse`.
    pub fn bucket(&self, name: &str) -> String {
        let answer = super::http::request(self.port, "PUT", &format!("/{name}"), &[], "")
            .expect("CreateBucket answered");
        assert_eq!(answer.status, 200, "CreateBucket {name}: {}", answer.text());
        format!("s3://{name}/warehouse")
    }

    /// The keys under `prefix` in `bucket` (S3 ListObjectsV2), for tests that look at what
    /// was written.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let answer = super::http::request(
            self.port,
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}&max-keys=100000"),
            &[],
            "",
        )
        .expect("ListObjectsV2 answered");
        let text = answer.text();
        text.split("<Key>")
            .skip(1)
            .filter_map(|part| part.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect()
    }

    /// The bytes of one object (S3 GetObject).
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let answer = super::http::request(self.port, "GET", &format!("/{bucket}/{key}"), &[], "")
            .expect("GetObject answered");
        assert_eq!(answer.status, 200, "GetObject {key}");
        answer.body
    }
}
