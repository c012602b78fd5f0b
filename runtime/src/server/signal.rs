//! [`Signal`]: a one-shot "stop now" that every call of a server waits on,
//! cheap to poll again and again.
//!
//! A `CancellationToken` shared by all calls takes two locks on every poll
//! (its tree node and its `Notify`'s waiter list); response bodies poll it
//! for every frame, so every stream on every thread contended for the same
//! two locks. Here a waiter registers with the `Notify` once per waker and
//! afterwards only reads an atomic flag.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

/// Fires once; [`fired`](Signal::fired) futures complete from then on.
#[derive(Clone, Default)]
pub(crate) struct Signal {
    set: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Signal {
    /// Fires the signal: every waiting future completes, and every later
    /// one completes at once.
    pub(crate) fn fire(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether the signal has fired.
    pub(crate) fn is_fired(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Completes when the signal fires (at once if it has).
    pub(crate) fn fired(&self) -> Fired {
        Fired {
            signal: self.clone(),
            notified: None,
            registered: None,
        }
    }
}

/// Completes when its [`Signal`] fires.
pub(crate) struct Fired {
    signal: Signal,
    notified: Option<Pin<Box<OwnedNotified>>>,
    /// The waker the `Notify` holds for this future.
    registered: Option<Waker>,
}

impl Future for Fired {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.signal.is_fired() {
            return Poll::Ready(());
        }
        if this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            // The `Notify` already holds an equivalent waker.
            return Poll::Pending;
        }
        let notify = &this.signal.notify;
        let notified = this
            .notified
            .get_or_insert_with(|| Box::pin(notify.clone().notified_owned()));
        if notified.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        this.registered = Some(cx.waker().clone());
        // Fired between the first check and the registration: the flag is
        // set before `notify_waiters`, so one of the two sees it.
        if this.signal.is_fired() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn a_waiting_future_is_woken_and_completes_when_the_signal_fires() {
        let signal = Signal::default();
        let mut fired = Box::pin(signal.fired());
        let (wakes, waker) = waker();
        let mut cx = Context::from_waker(&waker);
        assert!(fired.as_mut().poll(&mut cx).is_pending());
        // Polled again with the same waker: still waiting, nothing woken.
        assert!(fired.as_mut().poll(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        signal.fire();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(fired.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_future_made_or_polled_after_the_signal_completes_at_once() {
        let signal = Signal::default();
        let mut before = Box::pin(signal.fired());
        signal.fire();
        let (_, waker) = waker();
        let mut cx = Context::from_waker(&waker);
        assert!(before.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(signal.fired()).as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_new_waker_is_registered_and_the_latest_one_is_woken() {
        let signal = Signal::default();
        let mut fired = Box::pin(signal.fired());
        let (first, first_waker) = waker();
        let (second, second_waker) = waker();
        assert!(fired
            .as_mut()
            .poll(&mut Context::from_waker(&first_waker))
            .is_pending());
        assert!(fired
            .as_mut()
            .poll(&mut Context::from_waker(&second_waker))
            .is_pending());
        signal.fire();
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
    }
}
