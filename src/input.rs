//! Images as they arrive in a request, before decoding: raw bytes, or base64 text from a JSON
//! body. Base64 is decoded later, together with the image, off the async executor.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;

#[derive(Debug, Clone)]
pub enum EncodedImage {
    Raw(Bytes),
    Base64(String),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct Base64Error(String);

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

impl EncodedImage {
    /// The image file's bytes.
    pub fn into_bytes(self) -> Result<Bytes, Base64Error> {
        match self {
            EncodedImage::Raw(bytes) => Ok(bytes),
            EncodedImage::Base64(text) => decode_base64(&text).map(Bytes::from),
        }
    }
}

/// Accepts standard or URL-safe base64, with or without padding, wrapped lines, and an optional
/// `data:image/...;base64,` prefix.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, Base64Error> {
    let payload = match text.strip_prefix("data:") {
        Some(rest) => match rest.split_once(',') {
            Some((meta, data)) if meta.ends_with(";base64") => data,
            _ => {
                return Err(Base64Error("a data: URL must be of the form data:<type>;base64,<data>".to_owned()));
            }
        },
        None => text,
    };
    let compact: String;
    let payload = if payload.bytes().any(|b| b.is_ascii_whitespace()) {
        compact = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        compact.as_str()
    } else {
        payload
    };
    if payload.is_empty() {
        return Err(Base64Error("the base64 string is empty".to_owned()));
    }
    let engine = if payload.contains(['-', '_']) { &URL_SAFE } else { &STANDARD };
    engine.decode(payload).map_err(|e| Base64Error(format!("invalid base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_forms_clients_send() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8=\n").unwrap(), b"hello");
        assert_eq!(decode_base64("data:image/png;base64,aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("-_8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_base64("+/8=").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn refuses_what_is_not_base64() {
        assert!(decode_base64("").is_err());
        assert!(decode_base64("not base64!").is_err());
        assert!(decode_base64("data:image/png,aGVsbG8=").is_err());
    }
}
