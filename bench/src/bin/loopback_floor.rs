//! `loopback-floor`: the least one small write to each of many loopback TCP
//! sockets costs on this machine, with no server in the way.
//!
//! Why: `fanout --workflow none` delivers one event to 10,000 subscribers,
//! and a profile puts half of the server's time in the kernel's `sendto`
//! (on loopback the receiving side's TCP work runs in the sender's
//! softirq). Before blaming, or crediting, the server for the rest, this
//! measures the floor: a sender process that does nothing but write one
//! frame to each socket in turn, and a receiver like `fanout`'s client (one
//! tokio task per socket, on the same cores). Publish → receive latency
//! here is a lower bound for the same fan-out through any server.
//!
//! The run: this process binds a loopback listener and starts itself again
//! as the sender (`--send`), which connects `--sockets` sockets and then,
//! `--rounds` times and `--interval-ms` apart, writes a `--frame-bytes`
//! frame to every socket from `--threads` threads. Each frame carries the
//! wall-clock time its round began; the receiver records how long after
//! that it arrived. Prints p50/p99/max of every frame's latency, the mean
//! time to the last frame of a round, and the sender's CPU per frame.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use cerebral_bench::percentile;
use clap::Parser;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// Command line of `loopback-floor`.
#[derive(Debug, Parser)]
#[command(
    about = "One small write to each of many loopback sockets: the kernel's floor for a fan-out"
)]
struct Args {
    /// Sockets to write to.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Rounds (one frame to every socket each).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Time between two rounds, in milliseconds.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// Bytes per frame (a `next` frame of `events { cursor }` is about 90).
    #[arg(long, default_value_t = 90)]
    frame_bytes: usize,
    /// Sender threads, each writing its share of the sockets.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Internal: run as the sender, connecting to this port.
    #[arg(long, hide = true)]
    send: Option<u16>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let run = match args.send {
        Some(port) => send(&args, port),
        None => receive(&args),
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loopback-floor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The sender: connect every socket, say "ready" on stdout, wait for a line
/// on stdin, then write the rounds and print its CPU time.
fn send(args: &Args, port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut socks = Vec::with_capacity(args.sockets);
    for _ in 0..args.sockets {
        let s = TcpStream::connect(addr).context("connect")?;
        s.set_nodelay(true)?;
        socks.push(s);
    }
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let cpu0 = cpu_seconds();
    let threads = args.threads.max(1);
    let chunk = socks.len().div_ceil(threads);
    let mut groups: Vec<Vec<TcpStream>> = Vec::new();
    let mut it = socks.into_iter();
    loop {
        let g: Vec<TcpStream> = it.by_ref().take(chunk).collect();
        if g.is_empty() {
            break;
        }
        groups.push(g);
    }
    let start = Instant::now();
    for round in 0..args.rounds {
        let at = start + Duration::from_millis(args.interval_ms * round as u64);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let mut frame = vec![b'x'; args.frame_bytes.max(8)];
        frame[..8].copy_from_slice(&now_nanos().to_le_bytes());
        std::thread::scope(|s| {
            for g in groups.iter_mut() {
                let frame = &frame;
                s.spawn(move || {
                    for sock in g.iter_mut() {
                        // A failed write shows up as missing frames below.
                        let _ = sock.write_all(frame);
                    }
                });
            }
        });
    }
    println!("{}", cpu_seconds() - cpu0);
    // Keep the sockets open until the receiver has read everything.
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

/// The receiver: one tokio task per socket, like `fanout`'s client.
fn receive(args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .args([
                "--send",
                &port.to_string(),
                "--sockets",
                &args.sockets.to_string(),
                "--rounds",
                &args.rounds.to_string(),
                "--interval-ms",
                &args.interval_ms.to_string(),
                "--frame-bytes",
                &args.frame_bytes.to_string(),
                "--threads",
                &args.threads.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start the sender")?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the sender's pipes");
        };
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let frame_bytes = args.frame_bytes.max(8);
        let rounds = args.rounds;
        let seen: Arc<Mutex<Vec<Vec<u64>>>> = Arc::new(Mutex::new(vec![Vec::new(); rounds]));
        let mut tasks = Vec::with_capacity(args.sockets);
        for _ in 0..args.sockets {
            let (mut sock, _) = listener.accept().await?;
            let seen = seen.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; frame_bytes];
                for round in 0..rounds {
                    if sock.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let mut t = [0u8; 8];
                    t.copy_from_slice(&buf[..8]);
                    let lat = now_nanos().saturating_sub(u64::from_le_bytes(t));
                    if let Ok(mut s) = seen.lock() {
                        s[round].push(lat);
                    }
                }
            }));
        }
        if lines.next_line().await?.as_deref() != Some("ready") {
            bail!("the sender did not connect");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::io::AsyncWriteExt::write_all(&mut stdin, b"go\n").await?;
        let sender_cpu: f64 = lines
            .next_line()
            .await?
            .context("the sender's CPU time")?
            .trim()
            .parse()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for t in tasks {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        let _ = tokio::io::AsyncWriteExt::write_all(&mut stdin, b"done\n").await;
        let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        let mut all: Vec<Duration> = Vec::new();
        let mut last = Vec::new();
        for r in &seen {
            all.extend(r.iter().map(|n| Duration::from_nanos(*n)));
            if let Some(m) = r.iter().max() {
                last.push(*m as f64 / 1e6);
            }
        }
        all.sort();
        let frames = all.len();
        let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        let out = json!({
            "sockets": args.sockets,
            "rounds": rounds,
            "threads": args.threads,
            "frame_bytes": frame_bytes,
            "frames_received": frames,
            "frames_expected": args.sockets * rounds,
            "latency_p50_ms": ms(percentile(&all, 0.5)),
            "latency_p99_ms": ms(percentile(&all, 0.99)),
            "latency_max_ms": ms(all.last().copied().unwrap_or_default()),
            "last_frame_of_round_mean_ms": (last.iter().sum::<f64>() / last.len().max(1) as f64 * 10.0).round() / 10.0,
            "sender_cpu_us_per_frame": (sender_cpu * 1e6 / frames.max(1) as f64 * 10.0).round() / 10.0,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(())
    })
}
