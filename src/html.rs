//! The few HTML pages pagesync serves (dashboard, OAuth results, error pages, the
//! sandbox's pages) are built from strings; this module holds the two pieces they
//! share. Escaping is done by hand on purpose — see "HTML" in docs/architecture.md.

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A minimal, readable HTML page around `body` (already escaped).
pub fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title><style>body{{font-family:system-ui,\
         sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}table{{border-collapse:\
         collapse}}td,th{{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}}</style></head>\
         <body>{}</body></html>",
        escape(title),
        body
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_markup_character_is_escaped() {
        assert_eq!(
            super::escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }
}
