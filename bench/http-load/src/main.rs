//! The HTTP load benchmark's client (`scripts/bench --http`): N concurrent clients, each on
//! its own keep-alive connection, replay a weighted request mix against a running `vaxlake
//! serve` for a fixed time, and print what they saw as one JSON object: per request name the
//! count, the statuses and the latency percentiles, plus the requests sent (which the audit
//! table must hold, one row each).
//!
//! Why not `oha` or `goose`: the benchmark needs several endpoints mixed in one run (oha takes
//! one URL), the exact number of requests the server saw (to compare with the audit table),
//! and nothing to install beyond the workspace's own lock file (the tests and benchmarks run
//! offline). hyper's connection API does the protocol; this file only schedules and counts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(about = "Concurrent keep-alive clients replaying a request mix against vaxlake serve")]
struct Args {
    /// Server address, host:port (plain HTTP).
    #[arg(long)]
    addr: String,
    /// Bearer token sent with every request.
    #[arg(long, env = "VAXLAKE_LOAD_TOKEN")]
    token: Option<String>,
    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// How long the clients send; a request under way at the end is finished and counted.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// The request mix: a JSON list of {"name", "method", "path", "body"?, "weight"?}.
    #[arg(long)]
    mix: PathBuf,
}

#[derive(Deserialize, Clone)]
struct Spec {
    name: String,
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default = "one")]
    weight: usize,
    /// What a 200 answer must satisfy on its own (the soak's consistency checks): `coverage`
    /// (no numerator above its denominator unless flagged, no count in a suppressed cell,
    /// table versions named) or `sql_parts` (the first row's two columns equal: one table
    /// version behind every scan of one query).
    #[serde(default)]
    check: Option<String>,
}

fn get() -> String {
    "GET".into()
}

fn one() -> usize {
    1
}

/// One answered (or failed) request.
struct Sample {
    spec: usize,
    micros: u64,
    /// HTTP status, or 0 when the connection failed before an answer.
    status: u16,
}

#[derive(Serialize, Default)]
struct Summary {
    count: usize,
    statuses: BTreeMap<String, usize>,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    per_second: f64,
}

#[derive(Serialize)]
struct Report {
    clients: usize,
    seconds: f64,
    /// Requests written to the server (answered or not): what the audit table must hold.
    sent: usize,
    /// Connections the clients opened (a client reconnects after the server closes one).
    connections: usize,
    all: Summary,
    by_name: BTreeMap<String, Summary>,
    /// Client-side failures by kind (connect, send, body).
    failures: BTreeMap<String, usize>,
    /// Answers that failed their spec's `check`, by request name.
    inconsistent: BTreeMap<String, usize>,
    /// The first few reasons (no row data: counts and flags only).
    inconsistent_examples: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let specs: Vec<Spec> = serde_json::from_slice(
        &std::fs::read(&args.mix).with_context(|| format!("reading {}", args.mix.display()))?,
    )
    .context("the mix is a JSON list of {name, method, path, body?, weight?}")?;
    if specs.is_empty() {
        bail!("the mix is empty");
    }
    // The weighted cycle every client walks, each from its own offset, so that at any moment
    // the clients ask different questions in the mix's proportions.
    let cycle: Vec<usize> = specs
        .iter()
        .enumerate()
        .flat_map(|(i, s)| std::iter::repeat_n(i, s.weight.max(1)))
        .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let mut tasks = Vec::with_capacity(args.clients);
    for client in 0..args.clients {
        let client_job = Client {
            addr: args.addr.clone(),
            token: args.token.clone(),
            specs: specs.clone(),
            cycle: cycle.clone(),
            offset: client * 7919 % cycle.len(),
        };
        tasks.push(tokio::spawn(client_job.run(deadline)));
    }
    let mut samples = Vec::new();
    let (mut sent, mut connections) = (0, 0);
    let mut failures = BTreeMap::new();
    let mut inconsistent = BTreeMap::new();
    let mut inconsistent_examples = Vec::new();
    for task in tasks {
        let outcome = task.await.context("a client task panicked")?;
        samples.extend(outcome.samples);
        sent += outcome.sent;
        connections += outcome.connections;
        for (kind, n) in outcome.failures {
            *failures.entry(kind.to_string()).or_insert(0) += n;
        }
        for (spec, why) in outcome.inconsistent {
            *inconsistent.entry(specs[spec].name.clone()).or_insert(0) += 1;
            if inconsistent_examples.len() < 5 {
                inconsistent_examples.push(format!("{}: {why}", specs[spec].path));
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let by_name = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .fold(
            BTreeMap::new(),
            |mut map: BTreeMap<String, Vec<usize>>, (name, i)| {
                map.entry(name).or_default().push(i);
                map
            },
        )
        .into_iter()
        .map(|(name, ids)| {
            let picked = samples.iter().filter(|s| ids.contains(&s.spec));
            (name, summarise(picked, elapsed))
        })
        .collect();
    let report = Report {
        clients: args.clients,
        seconds: elapsed,
        sent,
        connections,
        all: summarise(samples.iter(), elapsed),
        by_name,
        failures,
        inconsistent,
        inconsistent_examples,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn summarise<'a>(samples: impl Iterator<Item = &'a Sample>, elapsed: f64) -> Summary {
    let mut summary = Summary::default();
    let mut micros = Vec::new();
    for s in samples {
        *summary.statuses.entry(s.status.to_string()).or_insert(0) += 1;
        if s.status != 0 {
            micros.push(s.micros);
        }
        summary.count += 1;
    }
    if micros.is_empty() {
        return summary;
    }
    micros.sort_unstable();
    // Nearest-rank percentiles: the smallest sample with at least p % of them at or below it.
    let rank = |p: f64| {
        micros[((p / 100.0 * micros.len() as f64).ceil() as usize).clamp(1, micros.len()) - 1]
    };
    let ms = |us: u64| us as f64 / 1000.0;
    summary.p50_ms = ms(rank(50.0));
    summary.p95_ms = ms(rank(95.0));
    summary.p99_ms = ms(rank(99.0));
    summary.max_ms = ms(*micros.last().unwrap_or(&0));
    summary.mean_ms = ms(micros.iter().sum::<u64>() / micros.len() as u64);
    summary.per_second = summary.count as f64 / elapsed;
    summary
}

struct Client {
    addr: String,
    token: Option<String>,
    specs: Vec<Spec>,
    cycle: Vec<usize>,
    offset: usize,
}

#[derive(Default)]
struct ClientOutcome {
    samples: Vec<Sample>,
    sent: usize,
    connections: usize,
    failures: BTreeMap<&'static str, usize>,
    /// (spec, reason) of each answer that failed its check.
    inconsistent: Vec<(usize, String)>,
}

impl Client {
    async fn run(self, deadline: Instant) -> ClientOutcome {
        let mut out = ClientOutcome::default();
        let mut sender = None;
        let mut next = self.offset;
        while Instant::now() < deadline {
            let mut conn = match sender.take() {
                Some(s) => s,
                None => match self.connect().await {
                    Ok(s) => {
                        out.connections += 1;
                        s
                    }
                    Err(_) => {
                        *out.failures.entry("connect").or_insert(0) += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let spec_id = self.cycle[next % self.cycle.len()];
            next += 1;
            let spec = &self.specs[spec_id];
            let request = match self.request(spec) {
                Ok(r) => r,
                Err(_) => {
                    *out.failures.entry("request").or_insert(0) += 1;
                    continue;
                }
            };
            if conn.ready().await.is_err() {
                *out.failures.entry("closed").or_insert(0) += 1;
                continue;
            }
            let began = Instant::now();
            out.sent += 1;
            let status = match conn.send_request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.into_body().collect().await {
                        Ok(body) => {
                            if let (200, Some(check)) = (status, &spec.check) {
                                if let Err(why) = check_answer(check, &body.to_bytes()) {
                                    out.inconsistent.push((spec_id, why));
                                }
                            }
                            sender = Some(conn);
                            status
                        }
                        Err(_) => {
                            *out.failures.entry("body").or_insert(0) += 1;
                            0
                        }
                    }
                }
                Err(_) => {
                    *out.failures.entry("send").or_insert(0) += 1;
                    0
                }
            };
            out.samples.push(Sample {
                spec: spec_id,
                micros: began.elapsed().as_micros() as u64,
                status,
            });
        }
        out
    }

    async fn connect(&self) -> Result<http1::SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn request(&self, spec: &Spec) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(spec.method.as_str())
            .uri(spec.path.as_str())
            .header(hyper::header::HOST, self.addr.as_str())
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match &spec.body {
            Some(text) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(text.clone())
            }
            None => Bytes::new(),
        };
        Ok(builder.body(Full::new(body))?)
    }
}

/// Whether one answer satisfies `check` (see [`Spec::check`]); `Err` says how it does not.
fn check_answer(check: &str, body: &[u8]) -> std::result::Result<(), String> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
    match check {
        "coverage" => {
            let rows = answer["rows"].as_array().ok_or("no rows")?;
            for row in rows {
                let flagged = row["flags"].as_array().is_some_and(|flags| {
                    flags
                        .iter()
                        .any(|flag| flag == "numerator_exceeds_denominator")
                });
                if let (Some(n), Some(d)) = (row["numerator"].as_u64(), row["denominator"].as_u64())
                {
                    if n > d && !flagged {
                        return Err(format!("numerator {n} > denominator {d}, not flagged"));
                    }
                }
                if row["suppressed"] == true && !row["numerator"].is_null() {
                    return Err("a suppressed cell carries a count".into());
                }
            }
            if answer["table_versions"].is_null() {
                return Err("no table_versions".into());
            }
            Ok(())
        }
        "sql_parts" => {
            let row = &answer["rows"][0];
            match (row[0].as_u64(), row[1].as_u64()) {
                (Some(a), Some(b)) if a == b => Ok(()),
                (a, b) => Err(format!("{a:?} != {b:?}: two table versions in one answer")),
            }
        }
        other => Err(format!("unknown check {other:?}")),
    }
}
