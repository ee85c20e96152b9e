//! The writer's record formats: an inbox record is its delivery's Page ids, comma
//! separated; a `page_state` record is a [`PageState`](crate::messages::PageState) as
//! JSON, of which the in-memory index (`index.rs`) reads only the status and the last
//! success.

use crate::ids::PageId;

pub(super) fn encode_pages(pages: &[PageId]) -> Vec<u8> {
    pages.iter().map(PageId::as_str).collect::<Vec<_>>().join(",").into_bytes()
}

pub(super) fn decode_pages(raw: &[u8]) -> Option<Vec<PageId>> {
    let text = std::str::from_utf8(raw).ok()?;
    text.split(',').map(|p| PageId::parse(p).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_records_round_trip() {
        let pages = vec![PageId::parse("1").unwrap(), PageId::parse("22").unwrap()];
        assert_eq!(decode_pages(&encode_pages(&pages)), Some(pages));
        assert_eq!(decode_pages(b"1,../2"), None);
        assert_eq!(decode_pages(b""), None);
        assert_eq!(decode_pages(&[0xff, 0xfe]), None);
    }
}
