//! Optional API-key authentication, for deployments without a platform gateway in front
//! (Azure Container Apps' external ingress authenticates nobody). Azure ML managed endpoints
//! authenticate callers themselves; there the key is left unset.
//!
//! Clients send `Authorization: Bearer <key>`. The probes (the route table's open routes) and
//! CORS preflights stay open so that the platform and browsers can reach them.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::routes;

/// The key requests must carry, when one is configured.
pub struct ApiKey(Vec<u8>);

impl ApiKey {
    pub fn new(key: &str) -> Self {
        Self(key.as_bytes().to_vec())
    }

    /// Compared in constant time, so response timing reveals nothing of the key's content.
    fn accepts(&self, presented: &[u8]) -> bool {
        self.0.ct_eq(presented).into()
    }
}

pub async fn require_api_key(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let open = routes::is_open(request.path()) || request.method() == Method::OPTIONS;
    let key = request.app_data::<web::Data<Option<ApiKey>>>().and_then(|key| key.as_ref().as_ref());
    let allowed = match key {
        None => true,
        Some(_) if open => true,
        Some(key) => request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|presented| key.accepts(presented.trim_ascii())),
    };
    if allowed {
        Ok(next.call(request).await?.map_into_left_body())
    } else {
        let error = super::error::for_path(request.path(), ApiError::Unauthorized);
        Ok(request.error_response(error).map_into_right_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_exact_key() {
        let key = ApiKey::new("s3cret-key");
        assert!(key.accepts(b"s3cret-key"));
        assert!(!key.accepts(b"s3cret-kez"));
        assert!(!key.accepts(b"s3cret-key-and-more"));
        assert!(!key.accepts(b""));
    }
}
