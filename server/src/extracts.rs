//! The extract shelf: where `/api/extracts` finds researchers' extracts (the `extracts/`
//! folder of a local warehouse, kept by the extract stage), and the sweeper that deletes
//! them when their time is up.

use std::path::PathBuf;

use serde_json::Value;
use vaxlake_extract::ExtractError;

/// The extracts of a local warehouse, for `/api/extracts`. Every look deletes expired
/// extracts first, so an expired extract is never listed or handed out.
#[derive(Debug, Clone)]
pub struct Shelf {
    pub dir: PathBuf,
}

impl Shelf {
    /// The shelf of the extracts in `dir` (`<warehouse>/extracts`).
    pub fn new(dir: PathBuf) -> Self {
        Shelf { dir }
    }

    /// The extracts (of `project` only, when given), each a JSON object with at least
    /// `project`, `extract_id`, `released` and `files`.
    pub fn list(&self, project: Option<&str>) -> Result<Vec<Value>, ExtractError> {
        vaxlake_extract::expire(&self.dir)?;
        let listed = vaxlake_extract::list(&self.dir, project)?;
        Ok(listed
            .iter()
            .filter_map(|l| serde_json::to_value(l).ok())
            .collect())
    }

    /// The path of `file` of extract `id` of `project` and whether the extract is released,
    /// after checking every checksum; `None` if there is no such file.
    pub fn file(
        &self,
        project: &str,
        id: &str,
        file: &str,
    ) -> Result<Option<(PathBuf, bool)>, ExtractError> {
        vaxlake_extract::expire(&self.dir)?;
        let Some(listed) = vaxlake_extract::list(&self.dir, Some(project))?
            .into_iter()
            .find(|l| l.extract_id == id)
        else {
            return Ok(None);
        };
        if file != "manifest.json" && !listed.files.iter().any(|f| f == file) {
            return Ok(None);
        }
        // A file changed since its manifest is never handed out.
        let verified = vaxlake_extract::verify(&listed.dir)?;
        Ok(Some((listed.dir.join(file), verified.released)))
    }

    /// Deletes expired extracts now and every `every` while the server runs: an extract
    /// nobody asks for must still be gone when its time is up, not at the next listing.
    pub fn expire_in_background(&self, every: std::time::Duration) {
        let dir = self.dir.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                let dir = dir.clone();
                match tokio::task::spawn_blocking(move || vaxlake_extract::expire(&dir)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "expiring extracts failed"),
                    Err(error) => tracing::warn!(%error, "expiring extracts stopped"),
                }
            }
        });
    }
}
