//! The host's share of a predicted step: launches queued one by one against one CUDA graph
//! replay (`bench --graph`).
//!
//! Queued one by one, launch i cannot start before the host has issued it, about i × H after
//! the step began (H: the host's cost per launch), nor before launch i − 1 has finished. While
//! the kernels are longer than H the queue fills and the host's cost is hidden; a run of
//! kernels shorter than H drains it and the GPU idles. A graph is issued with one call, and its
//! launches follow each other on the GPU alone.

/// The host's cost per launch queued one by one: an assumption (driver launch calls are
/// commonly quoted at 2–5 µs), not a measurement; no GPU has run this engine yet.
pub const HOST_LAUNCH_S: f64 = 3e-6;

/// A step's predicted length with launches queued one by one and as one graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HostTimeline {
    /// Launches queued one by one: the GPU waits for the host wherever it runs ahead.
    pub launch_by_launch_s: f64,
    /// One graph replay: one host call, then the launches back to back.
    pub graph_s: f64,
    /// How long the GPU waits for the host, launch by launch.
    pub gpu_idle_s: f64,
}

/// The timeline of launches taking `times` seconds each on the GPU, in queue order, with the
/// host spending `host_s` per launch.
pub fn timeline(times: &[f64], host_s: f64) -> HostTimeline {
    let (mut issued, mut end, mut idle) = (0.0f64, 0.0f64, 0.0f64);
    for &t in times {
        issued += host_s;
        let start = end.max(issued);
        idle += start - end;
        end = start + t;
    }
    let busy: f64 = times.iter().sum();
    HostTimeline {
        launch_by_launch_s: end,
        graph_s: if times.is_empty() { 0.0 } else { host_s + busy },
        gpu_idle_s: idle,
    }
}

/// The most host time per launch that keeps launches queued one by one within `slowdown`
/// (0.05: 5 %) of the GPU's busy time: above it, a graph pays. Found by bisection (the step's
/// length only grows with the host's cost).
pub fn host_budget(times: &[f64], slowdown: f64) -> f64 {
    let busy: f64 = times.iter().sum();
    let too_slow = |h: f64| timeline(times, h).launch_by_launch_s > (1.0 + slowdown) * busy;
    let (mut lo, mut hi) = (0.0f64, 1e-3f64);
    if !too_slow(hi) {
        return hi;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if too_slow(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn long_kernels_hide_the_host_and_short_ones_wait_for_it() {
        let h = 3e-6;
        // Long kernels: only the first launch waits for the host.
        let t = timeline(&[100e-6; 10], h);
        assert!(close(t.launch_by_launch_s, h + 1000e-6), "{t:?}");
        assert!(close(t.gpu_idle_s, h), "{t:?}");
        assert!(close(t.graph_s, h + 1000e-6), "{t:?}");
        // Kernels of 1 µs: the host issues one every 3 µs, the GPU idles 2 µs per launch.
        let t = timeline(&[1e-6; 100], h);
        assert!(close(t.launch_by_launch_s, 100.0 * h + 1e-6), "{t:?}");
        assert!(close(t.graph_s, h + 100e-6), "{t:?}");
        assert!(close(t.gpu_idle_s, t.launch_by_launch_s - 100e-6), "{t:?}");
        // A long kernel first lets the queue fill: the short ones behind it do not wait.
        let mut times = vec![1e-3];
        times.extend([1e-6; 100]);
        let t = timeline(&times, h);
        assert!(close(t.launch_by_launch_s, t.graph_s), "{t:?}");
        assert_eq!(timeline(&[], h).launch_by_launch_s, 0.0);
    }

    #[test]
    fn the_host_budget_is_where_the_step_gets_5_percent_longer() {
        // 100 kernels of 10 µs: one by one the step is about max(100 h, 1 ms) + 10 µs, so
        // 5 % longer (1.05 ms) at h ≈ 10.4 µs.
        let times = [10e-6; 100];
        let b = host_budget(&times, 0.05);
        assert!((b - 10.4e-6).abs() < 0.05e-6, "{b}");
        let t = timeline(&times, b);
        assert!((t.launch_by_launch_s / 1e-3 - 1.05).abs() < 1e-6, "{t:?}");
        // Nothing to wait for: the budget is the search's ceiling.
        assert_eq!(host_budget(&[1.0], 0.05), 1e-3);
    }
}
