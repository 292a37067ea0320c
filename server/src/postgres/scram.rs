//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, server side, against a
//! stored verifier: the auth file holds `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
//! (PostgreSQL's own format, written by `vaxlake token new` with `postgres-protocol`), never
//! the token or anything that logs in by itself.
//!
//! Written here rather than taken from `pgwire`: its SCRAM needs the salted password (which
//! is enough to sign in, so the file would hold a password equivalent) and compares proofs
//! with `==`. This side checks `H(ClientProof XOR HMAC(StoredKey, AuthMessage)) == StoredKey`
//! in constant time, as PostgreSQL does. Channel binding (`-PLUS`) is not offered; a client
//! that demands it is refused.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SASL mechanism offered.
pub(crate) const MECHANISM: &str = "SCRAM-SHA-256";

type HmacSha256 = Hmac<Sha256>;

/// What the server keeps of a user's token.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl std::str::FromStr for ScramVerifier {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || {
            "not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as `vaxlake token new` writes it)".to_string()
        };
        let rest = text
            .trim()
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or_else(wrong)?;
        let (parameters, keys) = rest.split_once('$').ok_or_else(wrong)?;
        let (iterations, salt) = parameters.split_once(':').ok_or_else(wrong)?;
        let (stored_key, server_key) = keys.split_once(':').ok_or_else(wrong)?;
        let key = |text: &str| -> Result<[u8; 32], String> {
            STANDARD
                .decode(text)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(wrong)
        };
        let iterations: u32 = iterations.parse().map_err(|_| wrong())?;
        if iterations < 4096 {
            return Err("the SCRAM verifier has fewer than 4096 iterations (RFC 7677)".into());
        }
        Ok(ScramVerifier {
            iterations,
            salt: STANDARD.decode(salt).map_err(|_| wrong())?,
            stored_key: key(stored_key)?,
            server_key: key(server_key)?,
        })
    }
}

/// PostgreSQL's verifier of `token` (a fresh random salt, 4096 iterations).
pub fn verifier(token: &str) -> String {
    postgres_protocol::password::scram_sha_256(token.as_bytes())
}

impl ScramVerifier {
    /// A verifier no token matches, for a user who does not exist: the exchange goes on as
    /// for a real user (same messages, a salt that is stable per name), so a client cannot
    /// tell unknown users from wrong tokens.
    pub(crate) fn decoy(name: &str, secret: &[u8; 32]) -> ScramVerifier {
        let salt = blake3::keyed_hash(secret, name.as_bytes());
        let key = blake3::keyed_hash(secret, format!("{name}/key").as_bytes());
        ScramVerifier {
            iterations: 4096,
            salt: salt.as_bytes()[..16].to_vec(),
            stored_key: *key.as_bytes(),
            server_key: *key.as_bytes(),
        }
    }
}

/// Why an exchange failed: the client's message was not SCRAM as offered, or the proof
/// did not match.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScramError {
    Malformed(&'static str),
    ChannelBindingRequired,
    WrongProof,
}

/// The exchange after the server's first message, waiting for the client's last.
#[derive(Debug)]
pub(crate) struct ServerFirst {
    client_first_bare: String,
    server_first: String,
    /// The client's nonce and the server's, as the client must echo them.
    nonce: String,
    /// The GS2 header the client sent (`n,,` or `y,,`), which `c=` must carry back.
    gs2_header: String,
    verifier: ScramVerifier,
}

impl ServerFirst {
    /// Reads the client's first message (`n,,n=<user>,r=<nonce>`) and answers with the
    /// salt, the iterations and the combined nonce.
    pub(crate) fn new(
        client_first: &[u8],
        verifier: ScramVerifier,
    ) -> Result<(ServerFirst, String), ScramError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| ScramError::Malformed("the client's first message is not UTF-8"))?;
        let mut parts = text.splitn(3, ',');
        let binding = parts.next().unwrap_or("");
        let authzid = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
        let bare = parts
            .next()
            .ok_or(ScramError::Malformed("no client-first-message-bare"))?;
        match binding {
            "n" | "y" => {}
            flag if flag.starts_with("p=") => return Err(ScramError::ChannelBindingRequired),
            _ => return Err(ScramError::Malformed("unknown channel binding flag")),
        }
        if !authzid.is_empty() {
            return Err(ScramError::Malformed(
                "an authorization identity is not supported",
            ));
        }
        // PostgreSQL ignores n= (the user is the startup message's); r= follows it.
        let client_nonce = bare
            .split(',')
            .find_map(|attribute| attribute.strip_prefix("r="))
            .filter(|nonce| {
                !nonce.is_empty()
                    && nonce
                        .bytes()
                        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
            })
            .ok_or(ScramError::Malformed("no client nonce"))?;
        if bare.split(',').any(|attribute| attribute.starts_with("m=")) {
            return Err(ScramError::Malformed(
                "mandatory extensions are not supported",
            ));
        }
        let mut server_nonce = [0u8; 18];
        rand::fill(&mut server_nonce);
        let nonce = format!("{client_nonce}{}", STANDARD.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&verifier.salt),
            verifier.iterations
        );
        Ok((
            ServerFirst {
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
                gs2_header: format!("{binding},{authzid},"),
                verifier,
            },
            server_first,
        ))
    }

    /// Checks the client's proof (`c=<binding>,r=<nonce>,p=<proof>`); on success, the
    /// server's final message (`v=<ServerSignature>`) proving the server knew the verifier.
    pub(crate) fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| ScramError::Malformed("the client's final message is not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attributes = without_proof.split(',');
        let binding = attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding"))?;
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        if binding != STANDARD.encode(self.gs2_header.as_bytes()) {
            return Err(ScramError::Malformed("the channel binding does not match"));
        }
        if nonce != self.nonce {
            return Err(ScramError::Malformed("the nonce does not match"));
        }
        let proof: [u8; 32] = STANDARD
            .decode(proof)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(ScramError::Malformed("the proof is not 32 bytes of base64"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature.iter())
            .map(|(p, s)| p ^ s)
            .collect();
        let stored_key = Sha256::digest(&client_key);
        if !bool::from(stored_key.as_slice().ct_eq(&self.verifier.stored_key)) {
            return Err(ScramError::WrongProof);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)))
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// A whole exchange with `postgres-protocol`'s client (what tokio-postgres uses), so the
    /// server side is checked against an implementation it shares no code with.
    fn exchange(token: &str, verifier: &ScramVerifier) -> Result<(), ScramError> {
        let mut client = ScramSha256::new(token.as_bytes(), ChannelBinding::unsupported());
        let (first, server_first) = ServerFirst::new(client.message(), verifier.clone())?;
        client
            .update(server_first.as_bytes())
            .expect("the client accepts the server's first message");
        let server_final = first.finish(client.message())?;
        client
            .finish(server_final.as_bytes())
            .expect("the client accepts the server's signature");
        Ok(())
    }

    #[test]
    fn the_right_token_signs_in_and_a_wrong_one_does_not() {
        let token = "vxl_0123456789abcdef";
        let verifier: ScramVerifier = verifier(token).parse().unwrap();
        exchange(token, &verifier).unwrap();
        assert_eq!(
            exchange("vxl_wrong", &verifier),
            Err(ScramError::WrongProof)
        );
        let decoy = ScramVerifier::decoy("nobody", &[7; 32]);
        assert_eq!(exchange(token, &decoy), Err(ScramError::WrongProof));
        // Stable per name, so asking twice does not tell a decoy from a real user.
        assert_eq!(decoy, ScramVerifier::decoy("nobody", &[7; 32]));
    }

    #[test]
    fn the_verifier_is_postgresqls_format_and_holds_no_token() {
        let token = "vxl_secret";
        let text = verifier(token);
        assert!(text.starts_with("SCRAM-SHA-256$4096:"), "{text}");
        assert!(!text.contains(token));
        assert!("SCRAM-SHA-256$1000:c2FsdA==$AAAA:BBBB"
            .parse::<ScramVerifier>()
            .is_err());
        assert!("md5abc".parse::<ScramVerifier>().is_err());
    }

    #[test]
    fn malformed_and_channel_bound_first_messages_are_refused() {
        let verifier: ScramVerifier = verifier("t").parse().unwrap();
        let refused =
            |message: &str| ServerFirst::new(message.as_bytes(), verifier.clone()).unwrap_err();
        assert_eq!(
            refused("p=tls-server-end-point,,n=,r=abc"),
            ScramError::ChannelBindingRequired
        );
        assert!(matches!(refused("n,,n=,"), ScramError::Malformed(_)));
        assert!(matches!(
            refused("n,a=admin,n=,r=abc"),
            ScramError::Malformed(_)
        ));
        assert!(matches!(refused("x"), ScramError::Malformed(_)));
    }
}
