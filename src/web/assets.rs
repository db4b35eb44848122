//! The dashboard's static files, embedded at build time (see `build.rs`): our own CSS
//! and JS from `static/`, and the pinned npm libraries under `vendor/`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::WebError;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// An embedded asset by its served name, with its ETag.
pub fn find(name: &str) -> Option<(&'static [u8], &'static str)> {
    let i = ASSETS.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
    Some((ASSETS[i].1, etags()[i].as_str()))
}

/// ETags of the assets in `ASSETS` order, hashed once on first use.
fn etags() -> &'static [String] {
    static ETAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, body)| format!("\"{}\"", &blake3::hash(body).to_hex()[..16]))
            .collect()
    })
}

/// The asset, with an ETag so browsers revalidate cheaply.
pub async fn serve(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let name = path.into_inner();
    let (body, etag) = find(&name).ok_or(WebError::NotFound)?;
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag)
    {
        return Ok(HttpResponse::NotModified().finish());
    }
    Ok(HttpResponse::Ok()
        .content_type(content_type(&name))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_vendored_assets_are_embedded_and_sorted() {
        assert!(ASSETS.windows(2).all(|w| w[0].0 < w[1].0));
        for name in [
            "skiff.css",
            "skiff.js",
            "console.js",
            "vendor/htmx.min.js",
            "vendor/novnc/core/rfb.js",
            "vendor/novnc/vendor/pako/lib/zlib/inflate.js",
        ] {
            assert!(
                find(name).is_some_and(|(b, _)| !b.is_empty()),
                "{name} missing"
            );
        }
        assert!(find("package.json").is_none());
        assert!(find("../Cargo.toml").is_none());
    }
}
