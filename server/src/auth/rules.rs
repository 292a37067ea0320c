//! Who may use which path (CONTRACTS.md, Access): the roles of each route of the route
//! table (`crate::api::routes`) and of each dashboard file, and the lookup the auth
//! middleware refuses by.

use super::users::Role;
use crate::api::routes::{PAGES, ROUTES};

/// Who may use a route (CONTRACTS.md, Access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (health, sign-in).
    Open,
    /// Signed-in users of these roles only.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether a user of `role` may use the route.
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Open => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// Coverage, effectiveness and the dashboards.
pub(crate) const ANALYSIS: Access = Access::Roles(&[Role::Analyst, Role::Ministry, Role::Operator]);
pub(crate) const OPERATORS: Access = Access::Roles(&[Role::Operator]);
pub(crate) const EXTRACTS: Access = Access::Roles(&[Role::Researcher, Role::Operator]);
/// Analysts only (SQL).
pub(crate) const ANALYSTS: Access = Access::Roles(&[Role::Analyst]);

/// Whether `path` is matched by the route `pattern` (`{name}` is one non-empty segment).
fn matches(pattern: &str, path: &str) -> bool {
    let mut wanted = pattern.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Who may use `path`: the rule of [`ROUTES`] or [`PAGES`] that matches it, `None` for a
/// path no rule lists, which nobody signed in may use (403; 401 without a valid token).
/// Every method of a path has the same rule (the route table's tests check it), so the
/// method is not asked: a method the path does not answer is refused by role first, then
/// answered 405.
pub fn access(path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .map(|route| (route.path, route.access))
        .chain(PAGES.iter().copied())
        .find(|(pattern, _)| matches(pattern, path))
        .map(|(_, access)| access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_table() {
        use Role::*;
        let may = |path: &str, role| access(path).is_some_and(|access| access.admits(role));
        assert!(may("/api/sql", Analyst));
        for role in [Ministry, Researcher, Operator] {
            assert!(!may("/api/sql", role));
        }
        for path in [
            "/api/coverage",
            "/api/coverage/curve",
            "/api/coverage/flags",
            "/api/coverage/invalid_doses",
            "/api/effectiveness",
            "/api/freshness",
            "/",
            "/app.js",
            "/dashboards/index.json",
        ] {
            assert!(may(path, Analyst) && may(path, Ministry) && may(path, Operator));
            assert!(!may(path, Researcher), "{path}");
        }
        for path in ["/api/audit", "/api/status", "/api/status/ingests"] {
            assert!(may(path, Operator));
            for role in [Analyst, Ministry, Researcher] {
                assert!(!may(path, role), "{path}");
            }
        }
        for path in ["/api/extracts", "/api/extracts/P-1/e1/part-0.parquet"] {
            assert!(may(path, Researcher) && may(path, Operator));
            assert!(!may(path, Analyst) && !may(path, Ministry), "{path}");
        }
        for role in [Analyst, Ministry, Researcher, Operator] {
            assert!(may("/api/health", role));
            assert!(may("/login", role));
        }
        assert_eq!(access("/api/health"), Some(Access::Open));
    }

    #[test]
    fn paths_no_rule_lists_are_refused_to_every_role() {
        for path in [
            "/api/nope",
            "/api/coverage/",
            "/api/coverage/flags/x",
            "/api/status/secret",
            "/api/extracts/P-1",
            "/api/extracts/P-1//f",
            "/api/extracts/P-1/e1/f/more",
            "/api",
            "/favicon.ico",
            "/dashboards/",
            "/dashboards/a/b.json",
            "/index.html/x",
            "",
        ] {
            assert_eq!(access(path), None, "{path}");
        }
    }

    #[test]
    fn every_dashboard_file_has_a_rule() {
        // The files built into this binary (none before `scripts/build-dashboards`).
        for file in crate::dashboards::asset_paths() {
            assert!(access(&format!("/{file}")).is_some(), "/{file} has no rule");
        }
    }
}
