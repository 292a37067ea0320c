//! Who is calling through Flight SQL: the `authorization` header of each call, a bearer
//! token (`Bearer vxl_...`, what ADBC sends with `adbc.flight.sql.authorization_header`) or,
//! in the handshake only, Basic with the auth file's user name and the token as password
//! (what ADBC sends for `username`/`password`), answered with the token as the bearer.

use base64::Engine;
use tonic::metadata::MetadataMap;

/// The credentials a call presents.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Presented {
    None,
    Bearer(String),
    Basic {
        name: String,
        token: String,
    },
    /// A header that is neither (or does not decode): refused as unauthenticated.
    Malformed,
}

pub(super) fn presented(metadata: &MetadataMap) -> Presented {
    let Some(value) = metadata.get("authorization") else {
        return Presented::None;
    };
    let Ok(value) = value.to_str() else {
        return Presented::Malformed;
    };
    let Some((scheme, credentials)) = value.trim().split_once(' ') else {
        return Presented::Malformed;
    };
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty() {
        return Presented::Bearer(credentials.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some((name, token)) = decoded.as_deref().and_then(|text| text.split_once(':')) {
            return Presented::Basic {
                name: name.to_string(),
                token: token.to_string(),
            };
        }
    }
    Presented::Malformed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    #[test]
    fn bearer_and_basic_are_read_and_anything_else_is_malformed() {
        assert_eq!(presented(&MetadataMap::new()), Presented::None);
        assert_eq!(
            presented(&with("Bearer vxl_ab")),
            Presented::Bearer("vxl_ab".into())
        );
        assert_eq!(
            presented(&with("bearer  vxl_ab ")),
            Presented::Bearer("vxl_ab".into())
        );
        // "ana:vxl:1" in base64: the password is everything after the first colon.
        let basic = base64::engine::general_purpose::STANDARD.encode("ana:vxl:1");
        assert_eq!(
            presented(&with(&format!("Basic {basic}"))),
            Presented::Basic {
                name: "ana".into(),
                token: "vxl:1".into()
            }
        );
        assert_eq!(presented(&with("Basic !!!")), Presented::Malformed);
        assert_eq!(presented(&with("Bearer ")), Presented::Malformed);
        assert_eq!(presented(&with("Token x")), Presented::Malformed);
    }
}
