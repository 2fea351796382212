//! JSON parsing whose errors name the element at fault (`annotations[3].segmentation.counts`),
//! not only a line and column: COCO files are one line of hundreds of MB.

use serde::de::DeserializeOwned;

/// Parses `bytes`; on failure, parses again tracking the path, so that the fast path of
/// large, valid files pays nothing for it.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|plain| {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Err(e) => match e.path().to_string() {
                field if field != "." => format!("at `{field}`: {}", e.into_inner()),
                _ => plain.to_string(),
            },
            Ok(_) => plain.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct File {
        annotations: Vec<Annotation>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Annotation {
        bbox: [f64; 4],
    }

    #[test]
    fn errors_name_the_element() {
        let text = br#"{"annotations": [{"bbox": [0, 0, 1, 1]}, {"bbox": [0, "x", 1, 1]}]}"#;
        let e = super::from_slice::<File>(text).unwrap_err();
        assert!(
            e.starts_with("at `annotations[1].bbox[1]`: invalid type"),
            "{e}"
        );
        assert!(e.contains("column"), "{e}");
        // A syntax error has no element to name.
        let e = super::from_slice::<File>(b"{").unwrap_err();
        assert!(e.contains("EOF"), "{e}");
    }
}
