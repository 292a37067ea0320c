//! The users of `serve --auth FILE` and their bearer tokens.
//!
//! Tokens are never stored: the auth file holds the BLAKE3 hash of each bearer token, and a
//! presented token is hashed and compared with every user's hash in constant time
//! (`blake3::Hash` equality), so neither the file nor the timing of a refusal gives a token
//! away.

use std::path::Path;

use serde::Deserialize;

/// What a user may do; who may use which route is the route table's
/// (`crate::api::routes::ROUTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Analyst,
    Ministry,
    Researcher,
    Operator,
}

impl Role {
    /// The role's name as in the auth file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Ministry => "ministry",
            Role::Researcher => "researcher",
            Role::Operator => "operator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;
    fn from_str(text: &str) -> Result<Self, AuthError> {
        match text {
            "analyst" => Ok(Role::Analyst),
            "ministry" => Ok(Role::Ministry),
            "researcher" => Ok(Role::Researcher),
            "operator" => Ok(Role::Operator),
            other => Err(AuthError::Invalid(format!(
                "unknown role {other:?}: analyst, ministry, researcher or operator"
            ))),
        }
    }
}

/// One line of the auth file.
#[derive(Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The one project whose extracts a researcher may fetch.
    pub project: Option<String>,
    token: blake3::Hash,
    /// What the PostgreSQL door checks the token against (SCRAM-SHA-256); `None` for an
    /// entry written before the door existed, whose user cannot sign in there.
    scram: Option<crate::postgres::ScramVerifier>,
}

impl User {
    /// The SCRAM verifier of the user's token, if the auth file has one.
    pub(crate) fn scram(&self) -> Option<&crate::postgres::ScramVerifier> {
        self.scram.as_ref()
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// Why the auth file or a token could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the auth file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("auth file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    role: Role,
    token_blake3: String,
    project: Option<String>,
    /// PostgreSQL's SCRAM-SHA-256 verifier of the token (for `serve --pg-listen`).
    scram_sha_256: Option<String>,
}

/// The users of `serve --auth FILE`.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    users: Vec<User>,
}

impl AuthConfig {
    /// Reads and checks the auth file: unique names, 64-hex hashes, a project for every
    /// researcher (and only for researchers).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| AuthError::File {
            path: shown,
            reason,
        })
    }

    /// Parses the auth file's text; the error says which entry is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        // Not the TOML library's text: it quotes the offending line, and a raw token pasted
        // in place of its hash would reach stderr. Line, column and the kind of error only.
        let file: AuthFile = toml::from_str(text)
            .map_err(|error| vaxlake_extract::spec::toml_reason(&error, text))?;
        let mut users = Vec::with_capacity(file.user.len());
        for (at, entry) in file.user.into_iter().enumerate() {
            let who = entry_name(at, &entry.name);
            let token = blake3::Hash::from_hex(entry.token_blake3.trim()).map_err(|_| {
                format!(
                    "user {who}: token_blake3 must be 64 hex characters (the BLAKE3 hash of the token, as `vaxlake token new` prints it)"
                )
            })?;
            if users.iter().any(|u: &User| u.name == entry.name) {
                return Err(format!("user {who} appears twice"));
            }
            if users.iter().any(|u: &User| u.token == token) {
                return Err(format!("user {who} has the same token as another user"));
            }
            match (entry.role, &entry.project) {
                (Role::Researcher, None) => {
                    return Err(format!("researcher {who} needs project = \"...\""))
                }
                (Role::Researcher, Some(_)) | (_, None) => {}
                (role, Some(_)) => {
                    return Err(format!(
                        "user {who}: only researchers have a project (role is {})",
                        role.as_str()
                    ))
                }
            }
            let scram = entry
                .scram_sha_256
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|reason| format!("user {who}: scram_sha_256 is {reason}"))?;
            users.push(User {
                scram,
                name: entry.name,
                role: entry.role,
                project: entry.project,
                token,
            });
        }
        if users.is_empty() {
            return Err("no [[user]] entries: nobody could sign in".into());
        }
        Ok(AuthConfig { users })
    }

    /// The user holding `token`. Every user's hash is compared (constant time each), so the
    /// time taken does not depend on which user, if any, matched.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        let presented = blake3::hash(token.as_bytes());
        let mut found = None;
        for user in &self.users {
            if user.token == presented {
                found = Some(user);
            }
        }
        found
    }

    /// The user called `name`, if any (the PostgreSQL door's user name).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|user| user.name == name)
    }

    /// The configured users (names, roles, projects; never tokens).
    pub fn users(&self) -> &[User] {
        &self.users
    }
}

/// A fresh bearer token and the hash to put in the auth file: 32 bytes from the operating
/// system's generator, hex-encoded with a `vxl_` prefix so that secret scanners find it.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = format!("vxl_{}", hex(&bytes));
    let hash = blake3::hash(token.as_bytes()).to_hex().to_string();
    (token, hash)
}

/// The `[[user]]` entry of the auth file for a user whose token hashes to `token_blake3`,
/// written by the TOML serializer (so that any name or project reads back as given).
/// Refuses what the file could not hold or a person could not read: an empty name or
/// project, control characters (line breaks, tabs, escapes), a project for a role other
/// than researcher, a researcher without one.
pub fn user_entry(
    name: &str,
    role: Role,
    project: Option<&str>,
    token_blake3: &str,
    scram_sha_256: Option<&str>,
) -> Result<String, AuthError> {
    let printable = |what: &str, text: &str| {
        if text.trim().is_empty() {
            Err(AuthError::Invalid(format!("{what} must not be empty")))
        } else if text.chars().any(char::is_control) {
            Err(AuthError::Invalid(format!(
                "{what} must not hold control characters (line breaks, tabs, escapes)"
            )))
        } else {
            Ok(())
        }
    };
    printable("the name (--name)", name)?;
    match (role, project) {
        (Role::Researcher, None) => {
            return Err(AuthError::Invalid(
                "a researcher needs a project (--project)".into(),
            ))
        }
        (Role::Researcher, Some(project)) => printable("the project (--project)", project)?,
        (_, None) => {}
        (_, Some(_)) => {
            return Err(AuthError::Invalid(
                "only researchers have a project (--project)".into(),
            ))
        }
    }
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        name: &'a str,
        role: &'a str,
        token_blake3: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        scram_sha_256: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        project: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        user: [Entry<'a>; 1],
    }
    toml::to_string(&File {
        user: [Entry {
            name,
            role: role.as_str(),
            token_blake3,
            scram_sha_256,
            project,
        }],
    })
    .map_err(|error| AuthError::Invalid(format!("cannot write the auth entry: {error}")))
}

/// How an error names the `at`-th entry of the auth file: by its name, unless the name
/// looks like a secret (a token or a hash pasted into the wrong field, a long run of hex
/// digits or of letters and digits), which is never printed; then by its position.
fn entry_name(at: usize, name: &str) -> String {
    let mut hex_run = 0usize;
    let mut word_run = 0usize;
    let mut secret = name.to_ascii_lowercase().contains("vxl_") || name.chars().count() > 64;
    for c in name.chars() {
        hex_run = if c.is_ascii_hexdigit() {
            hex_run + 1
        } else {
            0
        };
        word_run = if c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '/' | '=') {
            word_run + 1
        } else {
            0
        };
        secret |= hex_run >= 12 || word_run >= 32;
    }
    if secret {
        format!(
            "#{} (its name is not shown: it looks like a secret)",
            at + 1
        )
    } else {
        format!("#{} {name:?}", at + 1)
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> (AuthConfig, String) {
        let (token, hash) = new_token();
        let text = format!(
            "[[user]]\nname = \"ana\"\nrole = \"analyst\"\ntoken_blake3 = \"{hash}\"\n\
             [[user]]\nname = \"rex\"\nrole = \"researcher\"\nproject = \"P-1\"\ntoken_blake3 = \"{}\"\n",
            new_token().1
        );
        (AuthConfig::parse(&text).unwrap(), token)
    }

    #[test]
    fn a_token_finds_its_user_and_nothing_else_does() {
        let (config, token) = config();
        assert_eq!(config.authenticate(&token).unwrap().name, "ana");
        assert!(config.authenticate(&format!("{token}x")).is_none());
        assert!(config.authenticate("").is_none());
        let hash = blake3::hash(token.as_bytes()).to_hex().to_string();
        assert!(
            config.authenticate(&hash).is_none(),
            "the hash is not a token"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_entry_named() {
        let (_, hash) = new_token();
        for (text, wanted) in [
            (format!("[[user]]\nname=\"a\"\nrole=\"boss\"\ntoken_blake3=\"{hash}\"\n"), "unknown variant"),
            ("[[user]]\nname=\"a\"\nrole=\"analyst\"\ntoken_blake3=\"abc\"\n".to_string(), "64 hex"),
            (format!("[[user]]\nname=\"r\"\nrole=\"researcher\"\ntoken_blake3=\"{hash}\"\n"), "needs project"),
            (format!("[[user]]\nname=\"a\"\nrole=\"analyst\"\nproject=\"P\"\ntoken_blake3=\"{hash}\"\n"), "only researchers"),
            (format!("[[user]]\nname=\"a\"\nrole=\"analyst\"\ntoken_blake3=\"{hash}\"\n[[user]]\nname=\"a\"\nrole=\"ministry\"\ntoken_blake3=\"{}\"\n", new_token().1), "twice"),
            (String::new(), "no [[user]]"),
        ] {
            let error = AuthConfig::parse(&text).unwrap_err();
            assert!(error.contains(wanted), "{error} (wanted {wanted})");
        }
    }

    #[test]
    fn entries_read_back_as_written_whatever_the_name() {
        let odd = [
            "o\"brien",
            "back\\slash",
            "it's",
            "'''triple'''",
            "\"\"\"",
            "[[user]]",
            "a = \"b\"",
            "Zoë Ångström 名前",
            "#hash",
            " spaced ",
        ];
        for (i, name) in odd.iter().enumerate() {
            let mut text = String::new();
            let mut hashes = Vec::new();
            for (role, project) in [
                (Role::Analyst, None),
                (Role::Researcher, Some(odd[(i + 1) % odd.len()])),
            ] {
                let (_, hash) = new_token();
                let name = format!("{name}{}", role.as_str());
                text.push_str(&user_entry(&name, role, project, &hash, None).unwrap());
                hashes.push((name, role, project, hash));
            }
            let config = AuthConfig::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(config.users().len(), 2, "{text}");
            for (user, (name, role, project, hash)) in config.users().iter().zip(&hashes) {
                assert_eq!(&user.name, name, "{text}");
                assert_eq!(user.role, *role);
                assert_eq!(user.project.as_deref(), *project, "{text}");
                assert_eq!(user.token.to_hex().as_str(), hash);
            }
        }
    }

    #[test]
    fn entries_refuse_control_characters_and_misplaced_projects() {
        let (_, hash) = new_token();
        for (name, role, project) in [
            ("a\nb", Role::Analyst, None),
            ("a\rb", Role::Analyst, None),
            ("a\tb", Role::Analyst, None),
            ("a\u{1b}[31mb", Role::Analyst, None),
            ("a\u{7f}", Role::Analyst, None),
            ("a\u{85}", Role::Analyst, None),
            ("", Role::Analyst, None),
            ("r", Role::Researcher, Some("P\n[[user]]")),
            ("r", Role::Researcher, Some(" ")),
            ("r", Role::Researcher, None),
            ("a", Role::Operator, Some("P-1")),
        ] {
            assert!(
                user_entry(name, role, project, &hash, None).is_err(),
                "{name:?} {project:?}"
            );
        }
    }

    #[test]
    fn debug_shows_no_token_hash() {
        let (config, _) = config();
        let shown = format!("{config:?}");
        for user in config.users() {
            assert!(!shown.contains(&user.token.to_hex().to_string()));
        }
    }
}
