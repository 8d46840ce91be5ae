//! Request ids as Azure's Python inference server handles them: `x-request-id` is echoed (or a
//! UUID generated); `x-ms-client-request-id` is echoed; `x-ms-request-id` (legacy) is echoed or
//! filled from the client id, else the request id; any of them over 100 characters is a 431.

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

use super::error::ApiError;

pub const REQUEST_ID: &str = "x-request-id";
pub const CLIENT_REQUEST_ID: &str = "x-ms-client-request-id";
pub const LEGACY_REQUEST_ID: &str = "x-ms-request-id";
/// Azure's limit on each id header.
pub const MAX_ID_LEN: usize = 100;

/// The ids of one request, kept in its extensions for handlers and the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
    pub legacy_request_id: String,
}

impl RequestIds {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let get = |name: &str| {
            headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
        };
        let request_id = match get(REQUEST_ID) {
            id if id.is_empty() => uuid::Uuid::new_v4().to_string(),
            id => id,
        };
        if request_id.chars().count() > MAX_ID_LEN {
            return Err(ApiError::RequestIdTooLong("x-request-id must not exceed 100 characters"));
        }
        let mut client_request_id = get(CLIENT_REQUEST_ID);
        let mut legacy_request_id = get(LEGACY_REQUEST_ID);
        if legacy_request_id.is_empty() {
            legacy_request_id =
                if client_request_id.is_empty() { request_id.clone() } else { client_request_id.clone() };
        } else if client_request_id.is_empty() {
            client_request_id = legacy_request_id.clone();
        }
        if legacy_request_id.chars().count() > MAX_ID_LEN || client_request_id.chars().count() > MAX_ID_LEN {
            return Err(ApiError::RequestIdTooLong(
                "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters",
            ));
        }
        Ok(Self { request_id, client_request_id, legacy_request_id })
    }

    fn write_to(&self, headers: &mut HeaderMap) {
        for (name, value) in [
            (REQUEST_ID, &self.request_id),
            (LEGACY_REQUEST_ID, &self.legacy_request_id),
            (CLIENT_REQUEST_ID, &self.client_request_id),
        ] {
            if value.is_empty() {
                continue;
            }
            // An id that is not a valid header value (non-ASCII) is not echoed.
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
}

pub async fn request_ids(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let ids = match RequestIds::from_headers(request.headers()) {
        Ok(ids) => ids,
        Err(error) => return Ok(request.error_response(error).map_into_right_body()),
    };
    request.extensions_mut().insert(ids.clone());
    let mut response = next.call(request).await?;
    ids.write_to(response.headers_mut());
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn generates_a_request_id_and_fills_the_legacy_one() {
        let ids = RequestIds::from_headers(&HeaderMap::new()).unwrap();
        assert_eq!(ids.request_id.len(), 36);
        assert_eq!(ids.legacy_request_id, ids.request_id);
        assert_eq!(ids.client_request_id, "");
    }

    #[test]
    fn echoes_and_maps_client_ids_like_azure() {
        let ids = RequestIds::from_headers(&headers(&[(REQUEST_ID, "r1"), (CLIENT_REQUEST_ID, "c1")])).unwrap();
        assert_eq!(
            (ids.request_id.as_str(), ids.client_request_id.as_str(), ids.legacy_request_id.as_str()),
            ("r1", "c1", "c1")
        );

        let legacy = RequestIds::from_headers(&headers(&[(LEGACY_REQUEST_ID, "old")])).unwrap();
        assert_eq!((legacy.client_request_id.as_str(), legacy.legacy_request_id.as_str()), ("old", "old"));
    }

    #[test]
    fn refuses_ids_over_100_characters() {
        let long = "x".repeat(101);
        for name in [REQUEST_ID, CLIENT_REQUEST_ID, LEGACY_REQUEST_ID] {
            let err = RequestIds::from_headers(&headers(&[(name, &long)])).unwrap_err();
            assert!(matches!(err, ApiError::RequestIdTooLong(_)), "{name}");
        }
        assert!(RequestIds::from_headers(&headers(&[(REQUEST_ID, &"x".repeat(100))])).is_ok());
    }
}
