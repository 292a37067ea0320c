//! Four-eyes release, verification, listing and expiry of extracts.
//!
//! An extract is released when `approval.json` sits beside its manifest, written by an
//! operator other than the creator and naming the BLAKE3 of the manifest it approved, so a
//! manifest changed after approval is no longer released.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use crate::ExtractError;

fn read_json(path: &Path) -> Result<Value, ExtractError> {
    let text = std::fs::read_to_string(path).map_err(ExtractError::io(path))?;
    serde_json::from_str(&text).map_err(|e| ExtractError::Data(format!("{}: {e}", path.display())))
}

/// Finds extract `id` under `extracts` (any project).
pub fn find(extracts: &Path, id: &str) -> Result<PathBuf, ExtractError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ExtractError::Refused(format!(
            "{id:?} is not an extract id"
        )));
    }
    let projects = std::fs::read_dir(extracts).map_err(ExtractError::io(extracts))?;
    for project in projects.flatten() {
        let dir = project.path().join(id);
        if dir.join("manifest.json").is_file() {
            return Ok(dir);
        }
    }
    Err(ExtractError::Refused(format!(
        "no extract {id} in {}",
        extracts.display()
    )))
}

/// An operator's name as four eyes compare it: surrounding whitespace ignored, case
/// folded ("Alice", " alice " and "alice" are one operator).
pub fn normalise_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The operator who created extract `id`, as the audit table records its `create` step
/// (`vaxlake extract create` audits `... extract=<id>` under the creator's name; the newest
/// such record when the extract was created again). `None` when the warehouse has no audit
/// table or no such record.
pub async fn audited_creator(
    warehouse_location: &str,
    id: &str,
) -> Result<Option<String>, ExtractError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ExtractError::Refused(format!(
            "{id:?} is not an extract id"
        )));
    }
    let audit = vaxlake_query::AUDIT_TABLE;
    let warehouse = vaxlake_query::Warehouse::open(
        warehouse_location,
        vaxlake_query::QueryOptions::default()
            .with_refresh_interval(std::time::Duration::MAX)
            .with_tables([audit]),
    )
    .await?;
    if !warehouse.versions().contains_key(audit) {
        return Ok(None);
    }
    let answer = warehouse
        .sql(&format!(
            "SELECT \"user\" FROM {audit} WHERE endpoint = 'vaxlake extract create' \
             AND outcome = 'ok' AND parameters LIKE '% extract={id}' \
             ORDER BY at DESC LIMIT 1"
        ))
        .await?
        .to_json()?;
    Ok(answer["rows"][0][0]
        .as_str()
        .filter(|user| !normalise_name(user).is_empty())
        .map(str::to_string))
}

/// Releases extract `dir`, approved `by` an operator who is not its creator. The creator is
/// `audited_creator` (see [`audited_creator`]) when known, and the manifest's `created_by`
/// must then name the same operator (the manifest is editable until approved); names are
/// compared as [`normalise_name`] gives them.
pub fn approve(dir: &Path, by: &str, audited_creator: Option<&str>) -> Result<Value, ExtractError> {
    let manifest_path = dir.join("manifest.json");
    let manifest = read_json(&manifest_path)?;
    let approver = normalise_name(by);
    if approver.is_empty() {
        return Err(ExtractError::Refused(
            "--by must name the approving operator".into(),
        ));
    }
    let recorded = manifest["created_by"]
        .as_str()
        .map(normalise_name)
        .filter(|name| !name.is_empty());
    let creator = match (audited_creator.map(normalise_name), recorded) {
        (Some(audited), recorded) if recorded.as_deref() != Some(audited.as_str()) => {
            return Err(ExtractError::Refused(format!(
                "manifest.json names {} as the creator of this extract, but the audit records {audited:?} creating it: the manifest was changed; create the extract again",
                recorded.map_or("nobody".to_string(), |r| format!("{r:?}"))
            )));
        }
        (Some(audited), _) => audited,
        (None, Some(recorded)) => recorded,
        (None, None) => {
            return Err(ExtractError::Refused(
                "who created this extract is unknown (no created_by in its manifest, no create record in the audit): it cannot be approved; create it again".into(),
            ))
        }
    };
    if creator == approver {
        return Err(ExtractError::Refused(format!(
            "{} created this extract and cannot also approve it: a second operator must",
            by.trim()
        )));
    }
    let approval_path = dir.join("approval.json");
    if approval_path.exists() {
        return Err(ExtractError::Refused(
            "this extract is already approved".into(),
        ));
    }
    // What an approval killed while it wrote left (see below): not part of the extract.
    let staged = dir.join(".approval.json.partial");
    if staged.exists() {
        std::fs::remove_file(&staged).map_err(ExtractError::io(&staged))?;
    }
    verify(dir)?;
    let bytes = std::fs::read(&manifest_path).map_err(ExtractError::io(&manifest_path))?;
    let approval = json!({
        "extract_id": manifest["extract_id"],
        "approved_by": by.trim(),
        "approved_at": crate::now().1,
        "manifest_blake3": blake3::hash(&bytes).to_hex().to_string(),
    });
    let text =
        serde_json::to_string_pretty(&approval).map_err(|e| ExtractError::Data(e.to_string()))?;
    // Whole or absent: a torn approval.json (a full disk) would list the extract as released
    // while every download of it fails verification.
    let written = crate::write_synced(&staged, (text + "\n").as_bytes())
        .and_then(|()| {
            std::fs::rename(&staged, &approval_path).map_err(ExtractError::io(&approval_path))
        })
        .and_then(|()| crate::sync_dir(dir));
    if written.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    written?;
    Ok(approval)
}

/// What `verify` checked.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub extract_id: String,
    pub files: usize,
    pub released: bool,
}

/// Re-checks every file's BLAKE3 against the manifest (and the approval against the
/// manifest); any difference, missing or extra file is an error naming it.
pub fn verify(dir: &Path) -> Result<Verified, ExtractError> {
    let manifest_path = dir.join("manifest.json");
    let manifest = read_json(&manifest_path)?;
    let files = manifest["files"]
        .as_array()
        .ok_or_else(|| ExtractError::Verify("the manifest lists no files".into()))?;
    let mut listed = vec!["manifest.json".to_string(), "approval.json".to_string()];
    for file in files {
        let name = file["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.contains('/') || name.contains("..") {
            return Err(ExtractError::Verify(format!(
                "bad file name {name:?} in the manifest"
            )));
        }
        let path = dir.join(name);
        let bytes =
            std::fs::read(&path).map_err(|_| ExtractError::Verify(format!("{name} is missing")))?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        if Some(hash.as_str()) != file["blake3"].as_str()
            || Some(bytes.len() as u64) != file["bytes"].as_u64()
        {
            return Err(ExtractError::Verify(format!(
                "{name} differs from its manifest checksum"
            )));
        }
        listed.push(name.to_string());
    }
    for entry in std::fs::read_dir(dir)
        .map_err(ExtractError::io(dir))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if !listed.contains(&name) {
            return Err(ExtractError::Verify(format!(
                "{name} is not in the manifest"
            )));
        }
    }
    let approval_path = dir.join("approval.json");
    let released = if approval_path.exists() {
        let approval = read_json(&approval_path)?;
        let bytes = std::fs::read(&manifest_path).map_err(ExtractError::io(&manifest_path))?;
        if approval["manifest_blake3"].as_str() != Some(blake3::hash(&bytes).to_hex().as_str()) {
            return Err(ExtractError::Verify(
                "manifest.json changed after it was approved".into(),
            ));
        }
        true
    } else {
        false
    };
    Ok(Verified {
        extract_id: manifest["extract_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        files: files.len(),
        released,
    })
}

/// One extract, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub project: String,
    pub extract_id: String,
    pub released: bool,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub rows: u64,
    pub files: Vec<String>,
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The extracts under `extracts`, of `project` only when given, newest first.
pub fn list(extracts: &Path, project: Option<&str>) -> Result<Vec<Listed>, ExtractError> {
    let mut out = Vec::new();
    let Ok(projects) = std::fs::read_dir(extracts) else {
        return Ok(out);
    };
    for project_dir in projects.flatten() {
        let name = project_dir.file_name().to_string_lossy().to_string();
        if project.is_some_and(|p| p != name) {
            continue;
        }
        let Ok(ids) = std::fs::read_dir(project_dir.path()) else {
            continue;
        };
        for id in ids.flatten() {
            // Hidden: an extract being written (see `create`), not an extract yet.
            if id.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let dir = id.path();
            let Ok(manifest) = read_json(&dir.join("manifest.json")) else {
                continue;
            };
            let text = |key: &str| manifest[key].as_str().unwrap_or_default().to_string();
            out.push(Listed {
                project: name.clone(),
                extract_id: text("extract_id"),
                released: dir.join("approval.json").is_file(),
                created_by: text("created_by"),
                created_at: text("created_at"),
                expires_at: text("expires_at"),
                rows: manifest["rows"]["written"].as_u64().unwrap_or(0),
                files: manifest["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["name"].as_str().map(str::to_string))
                    .collect(),
                dir,
            });
        }
    }
    out.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(a.extract_id.cmp(&b.extract_id))
    });
    Ok(out)
}

/// Deletes the extracts whose expiry has passed; returns their ids.
pub fn expire(extracts: &Path) -> Result<Vec<String>, ExtractError> {
    let now = crate::now().1;
    let mut deleted = Vec::new();
    for listed in list(extracts, None)? {
        if !listed.expires_at.is_empty() && listed.expires_at <= now {
            std::fs::remove_dir_all(&listed.dir).map_err(ExtractError::io(&listed.dir))?;
            tracing::info!(extract = %listed.extract_id, project = %listed.project, "expired extract deleted");
            deleted.push(listed.extract_id);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(created_by: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let manifest = json!({"extract_id": "00ff", "files": [], "created_by": created_by});
        std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        dir
    }

    fn refusal(dir: &Path, by: &str, audited: Option<&str>) -> String {
        approve(dir, by, audited).unwrap_err().to_string()
    }

    #[test]
    fn the_creator_cannot_approve_under_another_spelling() {
        let dir = pending("alice");
        for by in ["alice", "Alice", " alice ", "ALICE\t", "\u{a0}Alice"] {
            assert!(
                refusal(dir.path(), by, None).contains("cannot also approve"),
                "{by:?}"
            );
            assert!(
                refusal(dir.path(), by, Some(" Alice")).contains("cannot also approve"),
                "{by:?}"
            );
        }
        for by in ["", "  "] {
            assert!(refusal(dir.path(), by, None).contains("--by must name"));
        }
        assert!(!dir.path().join("approval.json").exists());
        let approval = approve(dir.path(), " Bob ", Some("alice")).unwrap();
        assert_eq!(approval["approved_by"], "Bob");
        assert!(verify(dir.path()).unwrap().released);
    }

    #[test]
    fn the_audit_names_the_creator_and_the_manifest_must_agree() {
        // alice created it (audit) and rewrote created_by before approving it herself.
        let dir = pending("mallory");
        let error = refusal(dir.path(), "alice", Some("alice"));
        assert!(error.contains("the manifest was changed"), "{error}");
        // Nor may anyone else approve a manifest so changed.
        let error = refusal(dir.path(), "bob", Some("alice"));
        assert!(error.contains("the manifest was changed"), "{error}");
        // created_by removed: the same.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("manifest.json"),
            json!({"extract_id": "00ff", "files": []}).to_string(),
        )
        .unwrap();
        assert!(refusal(dir.path(), "bob", Some("alice")).contains("the manifest was changed"));
        assert!(refusal(dir.path(), "bob", None).contains("unknown"));
        // Agreeing up to case and spaces: a second operator approves.
        let dir = pending("Alice ");
        approve(dir.path(), "bob", Some("alice")).unwrap();
    }

    #[test]
    fn what_an_interrupted_create_or_approve_left_is_neither_listed_nor_in_the_way() {
        let extracts = tempfile::tempdir().unwrap();
        let project = extracts.path().join("P-1");
        // A staging directory killed after its manifest was written, before its rename.
        let staging = project.join(".00ff.partial-42");
        std::fs::create_dir_all(&staging).unwrap();
        let manifest = json!({"extract_id": "00ff", "files": [], "created_by": "alice"});
        std::fs::write(staging.join("manifest.json"), manifest.to_string()).unwrap();
        assert!(list(extracts.path(), None).unwrap().is_empty());
        assert!(find(extracts.path(), "00ff").is_err());
        // Renamed into place, it is listed; an approval killed before its rename does not
        // stop the next one.
        let dir = project.join("00ff");
        std::fs::rename(&staging, &dir).unwrap();
        assert_eq!(list(extracts.path(), None).unwrap().len(), 1);
        std::fs::write(dir.join(".approval.json.partial"), "{\"extract_id\": \"00").unwrap();
        assert!(!list(extracts.path(), None).unwrap()[0].released);
        approve(&dir, "bob", Some("alice")).unwrap();
        assert!(verify(&dir).unwrap().released);
        assert!(!dir.join(".approval.json.partial").exists());
    }
}
