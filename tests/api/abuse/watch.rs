//! Runs an attack against a server process while watching it: its peak
//! resident memory over the baseline, and whether `/healthz` kept answering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::ServerProcess;

/// `/healthz` must answer within this while an attack runs: a liveness
/// probe of Kubernetes times out after 1 s by default.
pub const HEALTHZ_WITHIN: Duration = Duration::from_secs(1);

/// What one watched attack cost the server.
#[derive(Debug)]
pub struct Cost {
    /// Wall time of the attack future.
    pub elapsed: Duration,
    /// Highest resident memory seen minus the resident memory before, in
    /// bytes (sampled every 5 ms, and the kernel's high-water mark when it
    /// is the only growth since the baseline).
    pub peak_growth_bytes: u64,
    /// The slowest `/healthz` answer while the attack ran (or the probe
    /// timeout when one did not answer).
    pub slowest_healthz: Duration,
}

impl Cost {
    /// Panics with the figures when the attack took longer than `time`,
    /// grew memory by more than `memory_bytes`, or stalled `/healthz`.
    pub fn assert_within(&self, what: &str, time: Duration, memory_bytes: u64) {
        assert!(
            self.elapsed <= time,
            "{what}: took {:?}, budget {time:?} ({self:?})",
            self.elapsed
        );
        assert!(
            self.peak_growth_bytes <= memory_bytes,
            "{what}: resident memory grew by {} KiB, budget {} KiB ({self:?})",
            self.peak_growth_bytes / 1024,
            memory_bytes / 1024
        );
        assert!(
            self.slowest_healthz < HEALTHZ_WITHIN,
            "{what}: /healthz took {:?} while the attack ran ({self:?})",
            self.slowest_healthz
        );
    }
}

/// Runs `attack` against `server` and measures what it cost.
pub async fn watch<F, T>(server: &ServerProcess, attack: F) -> (T, Cost)
where
    F: std::future::Future<Output = T>,
{
    let pid = server.pid;
    let baseline_kb = server.status_kb("VmRSS").unwrap_or(0);
    let done = Arc::new(AtomicBool::new(false));
    let peak_kb = Arc::new(AtomicU64::new(baseline_kb));
    // Memory is sampled on a thread of its own: the attack may keep the
    // test's runtime busy, and the figure must not depend on that.
    let sampler = {
        let done = done.clone();
        let peak_kb = peak_kb.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = crate::support::proc_status_kb(pid, "VmRSS") {
                    peak_kb.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let probe = {
        let done = done.clone();
        let url = format!("{}/healthz", server.base);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut slowest = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = client
                    .get(&url)
                    .timeout(HEALTHZ_WITHIN * 5)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let took = if ok {
                    started.elapsed()
                } else {
                    HEALTHZ_WITHIN * 5
                };
                slowest = slowest.max(took);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            slowest
        })
    };
    let started = Instant::now();
    let out = attack.await;
    let elapsed = started.elapsed();
    // One last sample, so a probe that never ran still gives a figure.
    tokio::time::sleep(Duration::from_millis(60)).await;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let slowest_healthz = probe.await.unwrap_or(HEALTHZ_WITHIN * 5);
    let peak = peak_kb.load(Ordering::Relaxed);
    let cost = Cost {
        elapsed,
        peak_growth_bytes: peak.saturating_sub(baseline_kb) * 1024,
        slowest_healthz,
    };
    eprintln!("attack cost: {cost:?}");
    (out, cost)
}

/// A server process over a fresh database of its own.
pub struct Target {
    /// The process.
    pub server: ServerProcess,
    /// The SQLite file's folder, removed after the server is gone.
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Target {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.server
    }
}

/// Starts a fresh server process over a fresh database with `envs`.
pub async fn server(envs: &[(&str, &str)]) -> Target {
    let (url, dir) = crate::support::fresh_database().await;
    Target {
        server: ServerProcess::start(&url, envs).await,
        _dir: dir,
    }
}
