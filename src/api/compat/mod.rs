//! Provider-compatible send routes at the root of the HTTP listener, beside `/v1`: an app keeps
//! its provider's official SDK and changes only the base URL and the key.
//!
//! Each provider's file parses that provider's body into the native [`SendRequest`], so a send
//! goes through the same submission core as `POST /v1/emails` (validation, limits, templates,
//! idempotency, suppressions, sandbox, events, webhooks), and answers in the provider's shape:
//! its success bodies, and its error bodies and statuses, which the SDKs turn into their own
//! exception types.
//!
//! Each provider says where its SDKs carry the key ([`Credentials`]), and the one gate
//! (`api::gate`) authenticates, throttles and charges as for `/v1`.
//! - `shared`: what every provider answers with (JSON bodies, the ignored-fields warning,
//!   errors in the provider's shape with the native headers, the common statuses).
//! - `batch`: batch bodies (size, items, their schema in the spec).
//! - `address`: address lists as providers write them (comma-separated strings).
//! - `resend`, `postmark`, `sendgrid`, `mailgun`: one folder per provider, each split the
//!   same way: `mod.rs` (its credentials and routes), `request.rs` (its bodies as its SDKs
//!   send them), `mapping.rs` (those into the native request, answers into its shapes),
//!   `errors.rs` (its error body and statuses) and `routes.rs` (the handlers).

mod address;
mod batch;
pub mod mailgun;
pub mod postmark;
pub mod resend;
pub mod sendgrid;
pub mod shared;

use axum::{Router, middleware};

use super::{
    AppState,
    gate::{Credentials, layer},
};

pub use shared::IGNORED_HEADER;

pub fn router(state: AppState) -> Router<AppState> {
    fn gated<C: Credentials + 'static>(
        routes: Router<AppState>,
        state: &AppState,
    ) -> Router<AppState> {
        routes.route_layer(middleware::from_fn_with_state(state.clone(), layer::<C>))
    }
    Router::new()
        .merge(gated::<resend::Resend>(resend::router(), &state))
        .merge(
            // The test token is answered before the gate: it is no key.
            gated::<postmark::Postmark>(postmark::router(), &state).route_layer(
                middleware::from_fn_with_state(state.clone(), postmark::test_token::layer),
            ),
        )
        .merge(gated::<sendgrid::SendGrid>(sendgrid::router(), &state))
        .merge(gated::<mailgun::Mailgun>(mailgun::router(), &state))
}
