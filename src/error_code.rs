//! The stable error codes, one table: each error of the domain and of the front ends reports one
//! `Code`, and each front end renders it in its own body shape. The README's error table, the
//! OpenAPI document and the code all come from here (the tests below fail if they drift).

use serde::Serialize;
use utoipa::ToSchema;

macro_rules! codes {
    ($($variant:ident = $status:literal, $name:literal, $when:literal;)+) => {
        /// What went wrong, for programs; stable across versions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Code {
            $(#[doc = $when] $variant,)+
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &[Code] = &[$(Code::$variant,)+];

            /// The HTTP status it is answered with.
            pub const fn status(self) -> u16 {
                match self { $(Code::$variant => $status,)+ }
            }

            /// The stable name clients match on (`"code"` in Azure's body shape).
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)+ }
            }

            /// When it is answered, for people (the README's table).
            pub const fn when(self) -> &'static str {
                match self { $(Code::$variant => $when,)+ }
            }
        }
    };
}

codes! {
    InvalidJson = 400, "invalid_json", "a body that is not valid JSON, or not exactly one of `image` and `images`";
    InvalidBase64 = 400, "invalid_base64", "an image in JSON that is not valid base64";
    InvalidMultipart = 400, "invalid_multipart", "a malformed multipart body";
    InvalidBody = 400, "invalid_body", "a body that could not be read";
    UnsupportedImageFormat = 400, "unsupported_image_format", "bytes that are not an image in a supported format";
    InvalidImage = 400, "invalid_image", "a corrupt or truncated image";
    InvalidDicom = 400, "invalid_dicom", "a truncated or corrupt DICOM file";
    NotADicomImage = 400, "not_a_dicom_image", "a DICOM file without pixel data, or not an image object";
    NoImage = 400, "no_image", "a request without any image";
    InvalidExplain = 400, "invalid_explain", "an `explain` or `explain_grid` value that is not `true`/`false` or a grid side from 2 to `explain_max_grid`";
    InvalidTensor = 400, "invalid_tensor", "a V2 input or output whose name, datatype, shape or data do not fit the model";
    Unauthorized = 401, "unauthorized", "`api_key` is set and the request lacks `Authorization: Bearer <key>` (answered with `WWW-Authenticate: Bearer`)";
    NotFound = 404, "not_found", "a path the server does not serve";
    ModelNotFound = 404, "model_not_found", "a V2 model name or version this server does not serve";
    MethodNotAllowed = 405, "method_not_allowed", "a method the path does not serve";
    BodyTimeout = 408, "body_timeout", "the body did not arrive within `request_timeout_ms`";
    BodyTooLarge = 413, "body_too_large", "a body over `max_body_bytes`";
    ImageTooLarge = 413, "image_too_large", "an image over `max_image_pixels` (checked from its header, before decoding)";
    TooManyImages = 413, "too_many_images", "more than `max_images_per_request` images";
    UnsupportedMediaType = 415, "unsupported_media_type", "a content type other than JSON, multipart, `image/*`, `application/dicom` or `application/octet-stream`";
    UnsupportedTransferSyntax = 415, "unsupported_transfer_syntax", "a DICOM file in a transfer syntax the server cannot decode (JPEG 2000, JPEG-LS, 12-bit JPEG); the message names it";
    UnsupportedDicomImage = 415, "unsupported_dicom_image", "a DICOM image of a kind the server cannot render (32-bit or float pixels, palette colour, colour over 8 bits)";
    RequestIdTooLong = 431, "request_id_too_long", "a request-id header over 100 characters";
    InferenceFailed = 500, "inference_failed", "ONNX Runtime failed on the batch (the cause is in the log, not the body)";
    NotReady = 503, "not_ready", "the model is still loading (with `Retry-After: 1`)";
    Overloaded = 503, "overloaded", "the admission queue (`queue_capacity`) is full (with `Retry-After: 1`)";
    ShuttingDown = 503, "shutting_down", "the server is shutting down (with `Retry-After: 1`)";
    Timeout = 504, "timeout", "not answered within `request_timeout_ms`";
}

impl Code {
    /// Whether the error's message stays out of the response: the cause of a server fault can
    /// name files and internals, so the body only points at the log.
    pub const fn is_opaque(self) -> bool {
        matches!(self, Code::InferenceFailed)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_match_serde() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for code in Code::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    /// The README's table, as this enum says it must read.
    fn readme_table() -> String {
        let mut table = String::from("| Status | `code` | When |\n| --- | --- | --- |\n");
        for code in Code::ALL {
            table.push_str(&format!("| {} | `{}` | {} |\n", code.status(), code.as_str(), code.when()));
        }
        table
    }

    #[test]
    fn the_readme_lists_exactly_these_codes() {
        let readme = include_str!("../README.md");
        let expected = readme_table();
        assert!(readme.contains(&expected), "README.md's error table must read:\n\n{expected}");
    }

    #[test]
    fn the_openapi_document_lists_exactly_these_codes() {
        let document: serde_json::Value = serde_json::from_str(&crate::http::openapi::document()).unwrap();
        let listed = &document["components"]["schemas"]["Code"]["enum"];
        let expected: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, &serde_json::json!(expected), "{document}");
    }

    #[test]
    fn only_client_and_availability_errors_show_their_message() {
        for code in Code::ALL {
            assert_eq!(code.is_opaque(), code.status() == 500, "{code}");
        }
    }
}
