//! Request body → encoded images. Accepts JSON (`{"image": b64}` / `{"images": [b64, ...]}`),
//! raw image bytes (`image/*`, `application/octet-stream`), and `multipart/form-data` file parts.

use actix_web::http::header::{self, HeaderMap};
use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::error::ApiError;
use crate::input::EncodedImage;

/// The JSON request body as parsed (`types::ScoreRequest` documents it): both fields optional
/// here, so that a body with neither or both gets a message saying so.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreBody {
    image: Option<String>,
    images: Option<Vec<String>>,
    explain: Option<bool>,
    explain_grid: Option<u32>,
}

/// What a scoring body carries: the images, and the options a JSON body may set.
#[derive(Debug, Default)]
pub struct ScoreInput {
    pub images: Vec<EncodedImage>,
    pub explain: Option<bool>,
    pub explain_grid: Option<u32>,
}

impl ScoreInput {
    fn images(images: Vec<EncodedImage>) -> Self {
        Self { images, ..Self::default() }
    }
}

/// JSON bodies up to this size are parsed on the async worker itself.
const INLINE_JSON_BYTES: usize = 256 * 1024;

/// [`read_body`], given up with a 408 when the body has not arrived by `deadline`.
pub async fn read_body_by(
    deadline: std::time::Instant,
    headers: &HeaderMap,
    payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    tokio::time::timeout_at(deadline.into(), read_body(headers, payload, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

/// Reads the whole body, refusing it as soon as it is known to exceed `limit`.
pub async fn read_body(headers: &HeaderMap, mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

enum BodyKind {
    Json,
    Multipart,
    Image,
}

fn body_kind(headers: &HeaderMap, body: &[u8]) -> Result<BodyKind, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        // No content type (e.g. `curl --data-binary` with -H "Content-Type:"): look at the bytes.
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        return Ok(if first == Some(&b'{') { BodyKind::Json } else { BodyKind::Image });
    };
    let content_type = value.to_str().unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/json" => Ok(BodyKind::Json),
        t if t.ends_with("+json") => Ok(BodyKind::Json),
        "multipart/form-data" => Ok(BodyKind::Multipart),
        "application/octet-stream" | "application/dicom" => Ok(BodyKind::Image),
        t if t.starts_with("image/") => Ok(BodyKind::Image),
        _ => Err(ApiError::UnsupportedMediaType(content_type.chars().take(100).collect())),
    }
}

/// Splits the body into the images it carries.
pub async fn extract_images(headers: &HeaderMap, body: Bytes) -> Result<Vec<EncodedImage>, ApiError> {
    Ok(extract_input(headers, body).await?.images)
}

/// Splits the body into the images it carries and the options of a JSON body.
pub async fn extract_input(headers: &HeaderMap, body: Bytes) -> Result<ScoreInput, ApiError> {
    match body_kind(headers, &body)? {
        BodyKind::Image => Ok(ScoreInput::images(vec![EncodedImage::Raw(body)])),
        // A typical body (one image, tens of KB) parses in microseconds; a large one is CPU
        // work and goes off the executor.
        BodyKind::Json if body.len() <= INLINE_JSON_BYTES => parse_json(&body),
        BodyKind::Json => {
            web::block(move || parse_json(&body)).await.map_err(|e| ApiError::InvalidJson(e.to_string()))?
        }
        BodyKind::Multipart => parse_multipart(headers, body).await.map(ScoreInput::images),
    }
}

pub fn parse_json(body: &[u8]) -> Result<ScoreInput, ApiError> {
    let request: ScoreBody = serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let (explain, explain_grid) = (request.explain, request.explain_grid);
    let images = match (request.image, request.images) {
        (Some(image), None) => vec![EncodedImage::Base64(image)],
        (None, Some(images)) => images.into_iter().map(EncodedImage::Base64).collect(),
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidJson("give either \"image\" or \"images\", not both".to_owned()));
        }
        (None, None) => {
            return Err(ApiError::InvalidJson(
                "expected {\"image\": \"<base64>\"} or {\"images\": [\"<base64>\", ...]}".to_owned(),
            ));
        }
    };
    Ok(ScoreInput { images, explain, explain_grid })
}

/// Every part that is a file (has a filename) or declares a non-text content type is an image;
/// plain form fields are ignored.
async fn parse_multipart(headers: &HeaderMap, body: Bytes) -> Result<Vec<EncodedImage>, ApiError> {
    let stream = futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut multipart = actix_multipart::Multipart::new(headers, stream);
    let invalid = |e: actix_multipart::MultipartError| ApiError::InvalidMultipart(e.to_string());
    let mut images = Vec::new();
    while let Some(mut field) = multipart.try_next().await.map_err(invalid)? {
        let has_filename = field.content_disposition().and_then(|d| d.get_filename()).is_some();
        let is_text = field.content_type().is_none_or(|mime| mime.type_() == actix_web::mime::TEXT);
        let mut content = BytesMut::new();
        while let Some(chunk) = field.try_next().await.map_err(invalid)? {
            content.extend_from_slice(&chunk);
        }
        if has_filename || !is_text {
            images.push(EncodedImage::Raw(content.freeze()));
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(value) = content_type {
            map.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[actix_web::test]
    async fn json_bodies_carry_one_or_several_images() {
        let one = extract_images(&headers(Some("application/json")), Bytes::from_static(br#"{"image": "aGk="}"#))
            .await
            .unwrap();
        assert!(matches!(one.as_slice(), [EncodedImage::Base64(b)] if b == "aGk="));
        let two = extract_images(
            &headers(Some("application/json; charset=utf-8")),
            Bytes::from_static(br#"{"images": ["YQ==", "Yg=="]}"#),
        )
        .await
        .unwrap();
        assert_eq!(two.len(), 2);
    }

    #[actix_web::test]
    async fn json_mistakes_are_named() {
        for (body, expected) in [
            (&br#"{"image": 3}"#[..], "invalid type"),
            (br#"{"imgae": "x"}"#, "unknown field `imgae`"),
            (br#"{}"#, "expected {\"image\""),
            (br#"{"image": "a", "images": []}"#, "not both"),
            (b"{\"image\": ", "EOF"),
        ] {
            let err = extract_images(&headers(Some("application/json")), Bytes::from_static(body)).await.unwrap_err();
            assert!(matches!(err, ApiError::InvalidJson(ref m) if m.contains(expected)), "{err}");
        }
    }

    #[actix_web::test]
    async fn content_types_choose_the_parser() {
        let raw = extract_images(&headers(Some("image/jpeg")), Bytes::from_static(b"\xff\xd8")).await.unwrap();
        assert!(matches!(raw.as_slice(), [EncodedImage::Raw(_)]));
        let sniffed_json = extract_images(&headers(None), Bytes::from_static(br#" {"image": "aGk="}"#)).await.unwrap();
        assert!(matches!(sniffed_json.as_slice(), [EncodedImage::Base64(_)]));
        let err = extract_images(&headers(Some("text/plain")), Bytes::from_static(b"hi")).await.unwrap_err();
        assert!(matches!(err, ApiError::UnsupportedMediaType(ref t) if t == "text/plain"));
    }

    #[actix_web::test]
    async fn multipart_keeps_file_parts_in_order_and_skips_text_fields() {
        let body = "--XyZ\r\n\
            Content-Disposition: form-data; name=\"note\"\r\n\r\n\
            hello\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"a\"; filename=\"a.jpg\"\r\n\
            Content-Type: image/jpeg\r\n\r\n\
            AAA\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"b\"; filename=\"b.png\"\r\n\r\n\
            BBB\r\n\
            --XyZ--\r\n";
        let images =
            extract_images(&headers(Some("multipart/form-data; boundary=XyZ")), Bytes::from(body)).await.unwrap();
        let contents: Vec<Bytes> = images
            .into_iter()
            .map(|image| match image {
                EncodedImage::Raw(bytes) => bytes,
                EncodedImage::Base64(_) => panic!("multipart parts are raw"),
            })
            .collect();
        assert_eq!(contents, [Bytes::from_static(b"AAA"), Bytes::from_static(b"BBB")]);

        let err = extract_images(&headers(Some("multipart/form-data")), Bytes::from_static(b"x")).await.unwrap_err();
        assert!(matches!(err, ApiError::InvalidMultipart(_)), "{err}");
    }
}
