//! The web page at `/`, embedded in the binary at build time from `web/`.
//! `web/config.js` is for static hosting; here `/config.js` is generated.

use axum::body::Bytes;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
const STYLE_CSS: &str = include_str!("../../../web/style.css");
const FAVICON_SVG: &str = include_str!("../../../web/favicon.svg");

/// Nothing but the page's own files; no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The page with the product name filled in (HTML-escaped).
pub fn index_html(product_name: &str) -> String {
    let escaped = product_name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    INDEX_HTML
        .replace(
            "Verify your email — otpd",
            &format!("Verify your email — {escaped}"),
        )
        .replace(">otpd</p>", &format!(">{escaped}</p>"))
}

/// The page's settings: the API on this origin, this server's product name
/// and code length.
pub fn config_js(product_name: &str, code_length: u8) -> String {
    let config = serde_json::json!({
        "apiBase": "",
        "productName": product_name,
        "codeLength": code_length,
    });
    // JSON is valid JavaScript; escaping `<` keeps any value from closing a script.
    let json = config.to_string().replace('<', "\\u003c");
    format!("window.OTPD_CONFIG = {json};\n")
}

fn asset(body: impl IntoResponse, content_type: &'static str, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

/// The page, rendered once when the router is built; each answer clones the bytes.
pub fn index(html: Bytes) -> Response {
    asset(html, "text/html; charset=utf-8", "no-cache")
}

/// `/config.js`, rendered once like the page.
pub fn config(script: Bytes) -> Response {
    asset(script, "text/javascript; charset=utf-8", "no-cache")
}

pub async fn app_js() -> Response {
    asset(
        APP_JS,
        "text/javascript; charset=utf-8",
        "public, max-age=300",
    )
}

pub async fn favicon() -> Response {
    asset(FAVICON_SVG, "image/svg+xml", "public, max-age=86400")
}

pub async fn style_css() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8", "public, max-age=300")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_name_is_escaped_in_html_and_script() {
        let html = index_html("<b>Acme</b>");
        assert!(html.contains("&lt;b&gt;Acme&lt;/b&gt;</p>") && !html.contains("<b>Acme"));
        let js = config_js("</script><script>alert(1)</script>", 6);
        assert!(!js.contains("</script>"));
        assert!(js.starts_with("window.OTPD_CONFIG = {") && js.contains("\"codeLength\":6"));
    }
}
