//! A closed-loop load: `clients` tasks, each sending its next request when its last is answered,
//! until a time is up or a number of requests was started. What a server can sustain, where an
//! open loop (requests at a fixed offered rate) measures latency at a rate chosen beforehand.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a closed-loop run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Latency of each successful request (ms).
    pub latencies_ms: Vec<f64>,
    /// The failed requests' messages.
    pub errors: Vec<String>,
    /// Successful requests per second, from the start to the last answer.
    pub per_second: f64,
}

/// Runs `request(i)` for i = 0, 1, 2, … from `clients` tasks in a closed loop, until `within` has
/// passed or `cap` requests were started; a request started before the end is waited for.
pub async fn run<F, Fut>(clients: usize, within: Duration, cap: usize, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + within;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= cap || Instant::now() >= end {
                        break;
                    }
                    let sent = Instant::now();
                    match request(i).await {
                        Ok(()) => latencies.push(sent.elapsed().as_secs_f64() * 1000.0),
                        Err(e) => errors.push(e),
                    }
                }
                (latencies, errors, Instant::now())
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    let mut last = start;
    for task in tasks {
        match task.await {
            Ok((latencies, errors, done)) => {
                outcome.latencies_ms.extend(latencies);
                outcome.errors.extend(errors);
                last = last.max(done);
            }
            Err(e) => outcome.errors.push(format!("a client task failed: {e}")),
        }
    }
    let elapsed = (last - start).max(Duration::from_micros(1));
    outcome.per_second = outcome.latencies_ms.len() as f64 / elapsed.as_secs_f64();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cap_bounds_the_requests_and_each_index_is_sent_once() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let outcome = run(4, Duration::from_secs(60), 25, move |i| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(i);
                if i % 10 == 3 {
                    Err(format!("refused {i}"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        assert_eq!(outcome.latencies_ms.len(), 22);
        let mut errors = outcome.errors.clone();
        errors.sort();
        assert_eq!(errors, ["refused 13", "refused 23", "refused 3"]);
        assert!(outcome.per_second > 0.0);
    }

    #[tokio::test]
    async fn the_time_limit_ends_the_loop_and_the_rate_is_what_was_answered() {
        // Two clients whose requests take at least 10 ms each, for 200 ms: at most 20 requests
        // each, and never more than 200 answers a second (fewer on a starved machine).
        let outcome = run(2, Duration::from_millis(200), usize::MAX, |_| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await;
        let n = outcome.latencies_ms.len();
        assert!((1..=40).contains(&n), "{n} requests");
        assert!(outcome.latencies_ms.iter().all(|ms| *ms >= 10.0));
        assert!(
            outcome.per_second > 0.0 && outcome.per_second <= 200.0 * 1.001,
            "{}",
            outcome.per_second
        );
    }
}
