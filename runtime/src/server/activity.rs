//! Calls open on one connection, for closing connections that stay idle
//! and for knowing when a closing connection has nothing left to do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// The calls open on one connection.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    open: AtomicUsize,
    changed: Notify,
}

/// Holds one of a connection's open calls.
#[derive(Debug)]
pub(crate) struct OpenCall(Arc<Activity>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

impl Activity {
    /// Counts a call as open while the result lives.
    pub(crate) fn open_call(self: &Arc<Self>) -> OpenCall {
        if self.open.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_waiters();
        }
        OpenCall(self.clone())
    }

    /// How many calls are open now.
    pub(crate) fn open_calls(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves when no call is open.
    pub(crate) async fn quiet(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Resolves once no call has been open for `max_idle` (never with
    /// `None`).
    pub(crate) async fn idle_for(&self, max_idle: Option<Duration>) {
        let Some(max_idle) = max_idle else {
            return std::future::pending().await;
        };
        loop {
            self.quiet().await;
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open.load(Ordering::Acquire) != 0 {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(max_idle) => return,
                () = &mut changed => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_means_no_call_for_the_whole_period() {
        let activity = Arc::new(Activity::default());
        let call = activity.open_call();
        let idle = activity.idle_for(Some(Duration::from_secs(10)));
        tokio::pin!(idle);
        // With a call open, never idle.
        assert!(tokio::time::timeout(Duration::from_secs(60), &mut idle)
            .await
            .is_err());
        drop(call);
        // Ten quiet seconds after the call ended.
        let started = tokio::time::Instant::now();
        idle.await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        activity.quiet().await;
    }
}
