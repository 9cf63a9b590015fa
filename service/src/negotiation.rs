//! Content negotiation for `GET /`: HTML only when the `Accept` header ranks `text/html` above
//! `text/plain`, so curl (`*/*`) and clients without `Accept` get the origin's plain text.

use actix_web::HttpRequest;
use actix_web::http::header::{ACCEPT, Accept, Header, Quality, QualityItem};
use actix_web::mime::Mime;

/// True when the client prefers `text/html` to `text/plain`.
///
/// Each type gets the quality of the most specific range that matches it (`text/html` over
/// `text/*` over `*/*`). HTML wins on a higher quality, or on equal quality when it was named
/// explicitly and plain text only matched a wildcard (a browser's
/// `text/html,...,*/*;q=0.8`). Any other tie goes to plain text, the origin's answer.
pub fn prefers_html(req: &HttpRequest) -> bool {
    // The fast path, taken by load generators, probes and curl: no mention of html at all.
    let mentions_html = req.headers().get_all(ACCEPT).any(|value| {
        value
            .as_bytes()
            .windows(4)
            .any(|w| w.eq_ignore_ascii_case(b"html"))
    });
    if !mentions_html {
        return false;
    }
    let Ok(Accept(items)) = Accept::parse(req) else {
        return false;
    };
    prefers_html_in(&items)
}

/// The decision on parsed `Accept` items (see [`prefers_html`]).
pub fn prefers_html_in(items: &[QualityItem<Mime>]) -> bool {
    let Some((html_q, html_specificity)) = best_match(items, "html") else {
        return false;
    };
    if html_q == Quality::ZERO {
        return false;
    }
    match best_match(items, "plain") {
        None => true,
        Some((plain_q, plain_specificity)) => {
            html_q > plain_q || (html_q == plain_q && html_specificity > plain_specificity)
        }
    }
}

/// Quality and specificity (2 exact, 1 `text/*`, 0 `*/*`) of the most specific range that
/// matches `text/<subtype>`.
fn best_match(items: &[QualityItem<Mime>], subtype: &str) -> Option<(Quality, u8)> {
    items
        .iter()
        .filter_map(|item| {
            let mime = &item.item;
            let specificity = match (mime.type_().as_str(), mime.subtype().as_str()) {
                ("*", "*") => 0,
                (t, "*") if t.eq_ignore_ascii_case("text") => 1,
                (t, s) if t.eq_ignore_ascii_case("text") && s.eq_ignore_ascii_case(subtype) => 2,
                _ => return None,
            };
            Some((item.quality, specificity))
        })
        .max_by_key(|(_, specificity)| *specificity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(accept: &str) -> bool {
        let req = actix_web::test::TestRequest::default()
            .insert_header((ACCEPT, accept))
            .to_http_request();
        prefers_html(&req)
    }

    #[test]
    fn browsers_get_html_and_command_line_clients_get_text() {
        assert!(decide(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
        ));
        assert!(decide("text/html"));
        assert!(decide("text/html, */*"));
        assert!(decide("text/plain;q=0.5, text/html"));
        assert!(!decide("*/*"));
        assert!(!decide("text/plain"));
        assert!(!decide("text/*"));
        assert!(!decide("text/html, text/plain"));
        assert!(!decide("text/html;q=0.5, text/plain"));
        assert!(!decide("text/html;q=0.9, */*"));
        assert!(!decide("text/html;q=0"));
        assert!(!decide("application/json"));
        assert!(!decide("not a media type, html"));
    }
}
