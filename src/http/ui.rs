//! `GET /ui`: the demo page, compiled into the binary (HTML, CSS and JS; nothing fetched from
//! elsewhere) and served with a strict Content-Security-Policy. Off with `ui = false`.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::error::{self, ApiError};
use super::routes;

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// The page's own files only: no inline script or style, no other origin, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The marker in index.html the server sets to say whether the page must ask for a key.
const KEY_MARKER: &str = r#"data-api-key="none""#;

/// Whether the page is served, and its HTML with the API-key marker set.
#[derive(Debug, Clone)]
pub struct DemoPage {
    html: Option<String>,
}

impl DemoPage {
    pub fn new(enabled: bool, api_key_required: bool) -> Self {
        let html = enabled.then(|| {
            if api_key_required {
                INDEX.replacen(KEY_MARKER, r#"data-api-key="required""#, 1)
            } else {
                INDEX.to_owned()
            }
        });
        Self { html }
    }
}

fn file(
    page: &DemoPage,
    path: &'static str,
    content_type: &'static str,
    body: &str,
) -> Result<HttpResponse, actix_web::Error> {
    if page.html.is_none() {
        return Err(error::for_path(path, ApiError::NotFound));
    }
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body.to_owned()))
}

pub async fn index(page: web::Data<DemoPage>) -> Result<HttpResponse, actix_web::Error> {
    let html = page.html.clone().unwrap_or_default();
    file(&page, routes::UI.path, "text/html; charset=utf-8", &html)
}

pub async fn script(page: web::Data<DemoPage>) -> Result<HttpResponse, actix_web::Error> {
    file(&page, routes::UI_SCRIPT.path, "text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style(page: web::Data<DemoPage>) -> Result<HttpResponse, actix_web::Error> {
    file(&page, routes::UI_STYLE.path, "text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_key_marker_and_loads_only_its_own_files() {
        assert!(INDEX.contains(KEY_MARKER), "index.html lost the marker the server sets");
        assert!(DemoPage::new(true, true).html.unwrap().contains(r#"data-api-key="required""#));
        assert!(DemoPage::new(false, false).html.is_none());
        for text in [INDEX, SCRIPT, STYLE] {
            for external in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(external), "the page refers to `{external}`");
            }
        }
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="), "inline script or style breaks the CSP");
    }
}
