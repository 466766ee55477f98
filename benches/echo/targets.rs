//! The performance targets for sockloop, checked against a run's medians.

use std::fmt::Write as _;

use crate::report::Results;
use crate::servers::Kind;

/// The targets, checked against this run's medians (informational: on a noisy machine
/// a ratio can move by several percent between runs).
pub fn check(results: &Results) -> String {
    let mut s = String::from("\nTargets (this run's medians):\n");
    let mut line = |ok: Option<bool>, text: String| {
        let verdict = match ok {
            Some(true) => "ok  ",
            Some(false) => "MISS",
            None => "n/a ",
        };
        let _ = writeln!(s, "  [{verdict}] {text}");
    };
    let pingpong = || results.rows.iter().filter(|r| r.case.idle == 0);
    for row in pingpong() {
        let n = row.case.active;
        for (peer, limit) in [
            (Kind::Tokio, if n >= 10_000 { 0.85 } else { 1.0 }),
            (Kind::Mio, 1.0),
        ] {
            if !results.kinds.contains(&peer) {
                continue;
            }
            let r = results.cpu_ratio(row, peer);
            line(
                r.map(|r| r.median <= limit),
                format!(
                    "CPU/msg sockloop/{} at {n}: {} (<= {limit:.2})",
                    peer.name(),
                    r.map_or("-".into(), |r| format!(
                        "{:.3} (rounds {:.3}-{:.3})",
                        r.median, r.min, r.max
                    ))
                ),
            );
        }
    }
    for row in pingpong().filter(|r| r.case.active >= 100) {
        let v = results
            .sample(row, Kind::Sockloop)
            .and_then(|x| x.syscalls_per_msg);
        line(
            v.map(|v| v <= 2.05),
            format!(
                "sockloop syscalls/msg at {}: {} (<= 2.05)",
                row.case.active,
                fmt_opt(v)
            ),
        );
    }
    for idle in results.rows.iter().filter(|r| r.case.idle > 0) {
        let alone = pingpong().find(|r| r.case.active == idle.case.active);
        let with = results.sample(idle, Kind::Sockloop);
        let base = alone.and_then(|r| results.sample(r, Kind::Sockloop));
        let growth = match (with, base) {
            (Some(w), Some(b)) => Some(w.cpu_us_per_msg / b.cpu_us_per_msg - 1.0),
            _ => None,
        };
        line(
            growth.map(|g| g < 0.05),
            format!(
                "sockloop CPU/msg of {} active beside {} idle vs alone: {} (< +5%)",
                idle.case.active,
                idle.case.idle,
                growth.map_or("-".into(), |g| format!("{:+.1}%", g * 100.0))
            ),
        );
        let mem = with.map(|x| x.rss_per_conn);
        line(
            mem.map(|m| m <= 256.0),
            format!(
                "sockloop RSS per connection with {} idle: {} B (<= 256)",
                idle.case.idle,
                mem.map_or("-".into(), |m| format!("{m:.0}"))
            ),
        );
    }
    s
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}
