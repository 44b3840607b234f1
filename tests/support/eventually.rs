//! `eventually`: the one way a test waits for something the app does in the background.

use std::{fmt::Display, time::Duration};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(50);

/// What a condition answers: it holds (`true`, `Some(value)`, `Ok(value)`) or not yet
/// (`false`, `None`, or `Err(the state seen)`, which the failure message then shows).
pub trait Condition {
    type Value;
    fn holds(self) -> Result<Self::Value, Option<String>>;
}

impl Condition for bool {
    type Value = ();
    fn holds(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Condition for Option<T> {
    type Value = T;
    fn holds(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Condition for Result<T, String> {
    type Value = T;
    fn holds(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Looks at `condition` until it holds and returns what it answered; after `timeout`, panics
/// naming `what` was awaited and the last state the condition reported.
pub async fn eventually<C: Condition>(
    what: impl Display,
    timeout: Duration,
    condition: impl AsyncFnMut() -> C,
) -> C::Value {
    match within(timeout, condition).await {
        Ok(value) => value,
        Err(Some(last)) => panic!("{what}: not within {timeout:?}; last seen: {last}"),
        Err(None) => panic!("{what}: not within {timeout:?}"),
    }
}

/// Like `eventually`, for a test that reports what is missing itself: `Err` (with the last
/// state seen, if the condition said) when `timeout` passed first.
pub async fn within<C: Condition>(
    timeout: Duration,
    mut condition: impl AsyncFnMut() -> C,
) -> Result<C::Value, Option<String>> {
    let start = tokio::time::Instant::now();
    loop {
        match condition().await.holds() {
            Ok(value) => return Ok(value),
            Err(last) if start.elapsed() >= timeout => return Err(last),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
