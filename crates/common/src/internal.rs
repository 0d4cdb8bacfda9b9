//! The credential of internal hops (gateway -> query service): a shared token in the
//! `x-chaukas-internal-token` metadata entry, compared in constant time.
//!
//! The query service answers any tenant's reads (the gateway has already confined them to the
//! caller's key), so it must not answer whoever can reach its port. Deployments set the token
//! from one secret on both sides; the built-in [`LOCAL_TOKEN`] is for a laptop and tests, and
//! the services log a warning when it is used on an address other than loopback.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};
use tower_layer::Layer;
use tower_service::Service;

/// Metadata entry that carries the token.
pub const METADATA: &str = "x-chaukas-internal-token";
/// The development token every default configuration shares.
pub const LOCAL_TOKEN: &str = "chaukas-local-internal-token";

/// Whether `listen` (a `host:port`) is reachable from other machines while the development
/// token is in use: worth a warning at startup.
pub fn exposed_with_local_token(listen: &str, token: &str) -> bool {
    token == LOCAL_TOKEN
        && !(listen.starts_with("127.")
            || listen.starts_with("[::1]")
            || listen.starts_with("localhost"))
}

/// Server side: a layer refusing calls without the token, except health and capabilities
/// (probes and `chaukas healthcheck` need no secret, and they reveal nothing).
#[derive(Clone)]
pub struct TokenCheck {
    token: Arc<[u8]>,
}

impl TokenCheck {
    /// Checks against `token`.
    pub fn new(token: &str) -> Self {
        Self {
            token: token.as_bytes().into(),
        }
    }

    /// Whether a call to `path` with these headers may pass.
    fn admits(&self, path: &str, headers: &axum::http::HeaderMap) -> bool {
        let open = matches!(path.rsplit('/').next(), Some("Healthz" | "GetCapabilities"));
        open || constant_time_eq(
            headers
                .get(METADATA)
                .map(|value| value.as_bytes())
                .unwrap_or_default(),
            &self.token,
        )
    }
}

impl<S> Layer<S> for TokenCheck {
    type Service = TokenChecked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenChecked {
            inner,
            check: self.clone(),
        }
    }
}

/// The service behind [`TokenCheck`].
#[derive(Clone)]
pub struct TokenChecked<S> {
    inner: S,
    check: TokenCheck,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<axum::http::Request<B>> for TokenChecked<S>
where
    S: Service<axum::http::Request<B>, Response = axum::http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        if self.check.admits(request.uri().path(), request.headers()) {
            Box::pin(self.inner.call(request))
        } else {
            let status = crate::errors::ErrorKind::Unauthenticated.status(
                "this internal service answers gateways only: missing or wrong x-chaukas-internal-token",
            );
            Box::pin(async move { Ok(status.into_http()) })
        }
    }
}

/// Client side: adds the token to every call.
#[derive(Clone)]
pub struct TokenAttach {
    value: Option<MetadataValue<Ascii>>,
}

impl TokenAttach {
    /// Attaches `token`; one that is not valid metadata is sent as nothing (and refused).
    pub fn new(token: &str) -> Self {
        Self {
            value: token.parse().ok(),
        }
    }
}

impl Interceptor for TokenAttach {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.value {
            request.metadata_mut().insert(METADATA, value.clone());
        }
        Ok(request)
    }
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_token_passes_except_for_health() {
        let check = TokenCheck::new("secret");
        let headers = |token: &str| {
            let request = TokenAttach::new(token).call(Request::new(())).unwrap();
            request.metadata().clone().into_headers()
        };
        let query = "/chaukas.spec.server.v1.ChaukasServerService/QueryEvents";
        assert!(check.admits(query, &headers("secret")));
        assert!(!check.admits(query, &headers("secreT")));
        assert!(!check.admits(query, &axum::http::HeaderMap::new()));
        let health = "/chaukas.spec.server.v1.ChaukasServerService/Healthz";
        assert!(check.admits(health, &axum::http::HeaderMap::new()));
    }

    #[test]
    fn the_local_token_on_a_public_address_is_flagged() {
        assert!(exposed_with_local_token("0.0.0.0:50052", LOCAL_TOKEN));
        assert!(!exposed_with_local_token("127.0.0.1:50052", LOCAL_TOKEN));
        assert!(!exposed_with_local_token("0.0.0.0:50052", "real"));
    }
}
