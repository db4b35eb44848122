//! The reconciler compares what the store says with what the host has, at start and
//! periodically. Each driver contributes a [`Reconcile`]; the runner only schedules
//! them and logs what they found.

use std::sync::Arc;
use std::time::Duration;

/// One area of the host that can drift from the store.
pub trait Reconcile: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Brings store and host back into agreement where that is safe, and returns one
    /// line per drift it found (fixed or not). Never deletes what it cannot account for.
    fn reconcile(&self) -> Result<Vec<String>, String>;
}

#[derive(Clone, Default)]
pub struct Reconciler {
    parts: Vec<Arc<dyn Reconcile>>,
}

impl Reconciler {
    pub fn new(parts: Vec<Arc<dyn Reconcile>>) -> Self {
        Reconciler { parts }
    }

    /// One pass over every part; returns every drift reported.
    pub fn run_once(&self) -> Vec<String> {
        let mut all = Vec::new();
        for part in &self.parts {
            match part.reconcile() {
                Ok(drift) => {
                    for d in &drift {
                        tracing::warn!(part = part.name(), drift = %d, "reconciler");
                    }
                    all.extend(drift);
                }
                Err(e) => tracing::error!(part = part.name(), error = %e, "reconciler pass failed"),
            }
        }
        all
    }

    /// Runs a pass every `every` on the blocking pool.
    pub fn start(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let me = self.clone();
                if tokio::task::spawn_blocking(move || me.run_once())
                    .await
                    .is_err()
                {
                    tracing::error!("reconciler pass panicked");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);
    impl Reconcile for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn reconcile(&self) -> Result<Vec<String>, String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(vec![format!("pass {n}")])
        }
    }
    struct Broken;
    impl Reconcile for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn reconcile(&self) -> Result<Vec<String>, String> {
            Err("no host".into())
        }
    }

    #[test]
    fn a_failing_part_does_not_stop_the_others() {
        let c = Arc::new(Counting(AtomicUsize::new(0)));
        let r = Reconciler::new(vec![Arc::new(Broken), c.clone()]);
        assert_eq!(r.run_once(), vec!["pass 0".to_string()]);
        assert_eq!(r.run_once(), vec!["pass 1".to_string()]);
    }
}
