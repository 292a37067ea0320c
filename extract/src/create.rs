//! `vaxlake extract create`: read the spec's rows through the read-only SQL sandbox, drop
//! opted-out persons, re-key every key column to the project, reach k-anonymity, and write
//! the files and the manifest under `<warehouse>/extracts/<project>/<extract-id>/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{
    cast, concat_batches, filter_record_batch, lexsort_to_indices, take, SortColumn,
};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{json, Value};
use vaxlake_pseudonymize::{MasterKey, ProjectKey};
use vaxlake_query::{QueryOptions, Warehouse};

use crate::kanon::{anonymise, QuasiIdentifier};
use crate::spec::{ColumnKind, Spec};
use crate::ExtractError;

/// File format of the extract's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Csv,
}

/// What `create` needs besides the spec.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The operator creating the extract (recorded; may not approve it).
    pub by: String,
    pub format: OutputFormat,
    /// Days after creation at which the extract is deleted.
    pub expires_after_days: u32,
}

/// A created extract.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub dir: PathBuf,
    pub manifest: Value,
}

/// The extracts' directory of a warehouse.
pub fn extracts_dir(warehouse: &Warehouse) -> Result<PathBuf, ExtractError> {
    extracts_dir_for(warehouse.root())
}

/// Where the extracts of the warehouse at `root` are written: `VAXLAKE_EXTRACTS_DIR` when set,
/// else `extracts/` beside the tables of a warehouse on the local file system. Extracts are
/// files handed to people (downloaded, verified, expired on a schedule), so a warehouse on
/// object storage keeps them in a local directory its operators name.
pub fn extracts_dir_for(root: &url::Url) -> Result<PathBuf, ExtractError> {
    if let Some(dir) = std::env::var_os("VAXLAKE_EXTRACTS_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    root.to_file_path()
        .map(|root| root.join("extracts"))
        .map_err(|()| {
            ExtractError::Refused(
                "a warehouse on object storage keeps its extracts in a local directory: set \
                 VAXLAKE_EXTRACTS_DIR"
                    .into(),
            )
        })
}

/// The tables an extract of `table` may read: the table itself, the tables its view is
/// built on when the warehouse has not materialised it (`antigen_doses` reads
/// `vaccinations`, see query/src/views.rs), and the opt-out list.
fn candidate_tables(table: &str) -> Vec<&str> {
    match table {
        "antigen_doses" => vec!["antigen_doses", "vaccinations", "optout"],
        other => vec![other, "optout"],
    }
}

/// The tables an extract of `table` reads in a warehouse holding `versions`, with their
/// versions: what the manifest and the extract id name.
fn tables_read(
    table: &str,
    versions: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, i64>, ExtractError> {
    let sources: Vec<&str> = match table {
        "antigen_doses" if !versions.contains_key(table) => vec!["vaccinations"],
        other => vec![other],
    };
    let mut read = BTreeMap::new();
    for name in sources {
        let version = versions.get(name).ok_or_else(|| {
            ExtractError::Refused(format!("the warehouse has no {name} table yet"))
        })?;
        read.insert(name.to_string(), *version);
    }
    if let Some(version) = versions.get("optout") {
        read.insert("optout".to_string(), *version);
    }
    Ok(read)
}

/// Opens the warehouse at `location` for an extract of `spec`: only the tables it reads
/// (the opt-out list included, which analysts never see), pinned at their current
/// versions (the session never looks for newer ones), so every query of the extract reads
/// the versions its manifest names, whatever is ingested meanwhile.
pub async fn open_pinned(location: &str, spec: &Spec) -> Result<Warehouse, ExtractError> {
    Ok(Warehouse::open(
        location,
        QueryOptions::default()
            .with_max_rows(1 << 40)
            .with_refresh_interval(Duration::MAX)
            .with_tables(candidate_tables(&spec.table)),
    )
    .await?)
}

/// Creates the extract `spec` describes (see the module documentation). Refused when k
/// cannot be reached within the spec's suppression share, or when the same extract exists.
pub async fn create(
    warehouse_location: &str,
    spec: &Spec,
    key: &MasterKey,
    options: &CreateOptions,
) -> Result<Created, ExtractError> {
    let warehouse = open_pinned(warehouse_location, spec).await?;
    create_in(&warehouse, spec, key, options).await
}

/// [`create`] on a warehouse opened with [`open_pinned`] (refused otherwise): the extract
/// holds the rows of the table versions pinned when it was opened.
pub async fn create_in(
    warehouse: &Warehouse,
    spec: &Spec,
    key: &MasterKey,
    options: &CreateOptions,
) -> Result<Created, ExtractError> {
    if warehouse.options().refresh_interval != Duration::MAX {
        return Err(ExtractError::Refused(
            "an extract reads one snapshot of the warehouse: open it with open_pinned".into(),
        ));
    }
    if options.by.trim().is_empty() {
        return Err(ExtractError::Refused(
            "--by must name the operator creating the extract".into(),
        ));
    }
    let versions = tables_read(&spec.table, &warehouse.versions())?;
    // Every table, the ones read included, must carry this key's id; a warehouse whose
    // tables disagree (an interrupted rotation) is refused, as the ingest refuses it.
    let stored = warehouse
        .stored_keys()
        .await
        .map_err(|error| ExtractError::Refused(error.to_string()))?;
    vaxlake_catalog::check_keys(&stored, &key.key_id())
        .map_err(|error| ExtractError::Refused(error.to_string()))?;
    let project_key = ProjectKey::new(key, &spec.project);
    let id = extract_id(spec, &versions, project_key.key_id());
    let dir = extracts_dir(warehouse)?.join(&spec.project).join(&id);
    refuse_existing(&dir, &id)?;

    // Rows, without the persons who objected.
    let predicate = spec
        .filter
        .as_deref()
        .map_or("TRUE".to_string(), |f| format!("({f})"));
    let optout = versions.contains_key("optout");
    let objecting = if optout {
        "person_key IN (SELECT person_key FROM optout)"
    } else {
        "FALSE"
    };
    let removed = warehouse
        .sql(&format!(
            "SELECT count(*), count(DISTINCT person_key) FROM {} WHERE {predicate} AND {objecting}",
            spec.table
        ))
        .await?
        .to_json()?;
    let removed_rows = removed["rows"][0][0].as_u64().unwrap_or(0);
    let removed_persons = removed["rows"][0][1].as_u64().unwrap_or(0);
    let columns: Vec<&str> = spec.columns.iter().map(|(n, _)| n.as_str()).collect();
    let answer = warehouse
        .sql(&format!(
            "SELECT {} FROM {} WHERE {predicate} AND NOT ({objecting})",
            columns.join(", "),
            spec.table
        ))
        .await?;
    let schema = answer.schema.clone();
    let batch = concat_batches(&schema, &answer.batches)?;
    let rows_read = batch.num_rows();
    // Pinned, the session cannot have moved on; should it ever, the manifest would name
    // versions the rows did not come from: refuse rather than write it.
    let after = tables_read(&spec.table, &warehouse.versions())?;
    if after != versions {
        return Err(ExtractError::Refused(format!(
            "the table versions changed while the extract was read ({versions:?}, then {after:?}); create it again"
        )));
    }

    // k-anonymity over the quasi-identifiers.
    let mut qis = Vec::new();
    let ladders: Vec<Vec<String>> = spec
        .quasi_identifiers
        .iter()
        .map(|qi| spec.ladder(qi))
        .collect();
    for (qi, ladder) in spec.quasi_identifiers.iter().zip(&ladders) {
        let kind = kind_of(spec, qi);
        let values = strings(batch.column(schema.index_of(qi)?))?;
        let cantons = (kind == ColumnKind::Commune).then(|| {
            values
                .iter()
                .map(|v| {
                    v.as_deref()
                        .and_then(vaxlake_pseudonymize::canton_of)
                        .map(|(_, canton)| canton.to_string())
                })
                .collect()
        });
        qis.push(QuasiIdentifier {
            name: qi,
            kind,
            ladder,
            precision: crate::spec::stored_precision(qi, kind),
            values,
            cantons,
        });
    }
    let anonymised = anonymise(
        &qis,
        rows_read,
        u64::from(spec.k),
        spec.max_suppressed_share,
    )
    .map_err(|unreachable| {
        ExtractError::Refused(format!(
            "k = {} cannot be reached: even at the coarsest levels of the ladders, {} of {} records ({:.1} %) are in classes smaller than k, more than max_suppressed_share = {}; coarsen the ladders, drop a quasi-identifier or narrow the rows",
            spec.k,
            unreachable.suppressed_at_best,
            unreachable.records,
            100.0 * unreachable.suppressed_at_best as f64 / unreachable.records.max(1) as f64,
            spec.max_suppressed_share
        ))
    })?;

    // Output columns: keys re-keyed, quasi-identifiers released, the rest as read.
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, kind) in &spec.columns {
        let column = batch.column(schema.index_of(name)?);
        if let ColumnKind::Key(id_kind) = kind {
            let values = strings(column)?;
            let rekeyed: StringArray = values
                .iter()
                .map(|v| {
                    v.as_deref()
                        .and_then(|v| project_key.rekey_hex(*id_kind, v))
                })
                .collect();
            fields.push(Field::new(name, DataType::Utf8, true));
            arrays.push(Arc::new(rekeyed));
        } else if let Some(i) = spec.quasi_identifiers.iter().position(|q| q == name) {
            let released: StringArray = anonymised.released[i]
                .iter()
                .map(|v| v.as_deref())
                .collect();
            fields.push(Field::new(name, DataType::Utf8, true));
            arrays.push(Arc::new(released));
        } else {
            fields.push(Field::new(name, column.data_type().clone(), true));
            arrays.push(column.clone());
        }
    }
    let out_schema = Arc::new(Schema::new(fields));
    let full = RecordBatch::try_new(out_schema.clone(), arrays)?;
    let kept = filter_record_batch(&full, &BooleanArray::from(anonymised.keep.clone()))?;
    let sorted = sort_all(&kept)?;

    // Files, then the manifest naming their checksums, in a staging directory renamed into
    // place whole: a failure or a kill at any point (a full disk, SIGKILL) leaves no extract
    // that is listed, served or approvable, and nothing that refuses the next attempt.
    let staging = Staging::create(&dir)?;
    let file_name = match options.format {
        OutputFormat::Parquet => "part-00000.parquet",
        OutputFormat::Csv => "part-00000.csv",
    };
    let path = staging.path.join(file_name);
    write_rows(&path, &sorted, options.format)?;
    let bytes = std::fs::read(&path).map_err(ExtractError::io(&path))?;
    let (created_micros, created_at) = crate::now();
    let expires =
        crate::rfc3339(created_micros + i64::from(options.expires_after_days) * 86_400 * 1_000_000);
    let manifest = json!({
        "extract_id": id,
        "project": spec.project,
        "purpose": spec.purpose,
        "spec": spec.text,
        "spec_blake3": spec.hash,
        "table": spec.table,
        "table_versions": versions,
        "project_key_id": project_key.key_id(),
        "rows": {
            "read": rows_read as u64 + removed_rows,
            "removed_opt_out": removed_rows,
            "removed_opt_out_persons": removed_persons,
            "suppressed": anonymised.records_suppressed,
            "generalised": anonymised.records_generalised,
            "written": sorted.num_rows(),
        },
        "anonymisation": {
            "quasi_identifiers": spec.quasi_identifiers,
            "k_required": spec.k,
            "k_achieved": anonymised.k_achieved,
            "max_suppressed_share": spec.max_suppressed_share,
            "levels": anonymised.levels.iter().map(|(c, l)| json!({"column": c, "level": l})).collect::<Vec<_>>(),
            "risk": anonymised.risk,
        },
        "files": [{
            "name": file_name,
            "bytes": bytes.len(),
            "blake3": blake3::hash(&bytes).to_hex().to_string(),
        }],
        "created_by": options.by.trim(),
        "created_at": created_at,
        "expires_at": expires,
    });
    let manifest_path = staging.path.join("manifest.json");
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| ExtractError::Data(e.to_string()))?;
    crate::write_synced(&manifest_path, (text + "\n").as_bytes())?;
    staging.publish(&id)?;
    tracing::info!(extract = %id, project = %spec.project, rows = sorted.num_rows(), "extract created");
    Ok(Created { id, dir, manifest })
}

/// Refuses to write extract `id` where a whole one (its manifest) already is: checked before
/// reading the tables, and again before the rename (another `create` of the same spec and
/// versions may have finished meanwhile).
fn refuse_existing(dir: &Path, id: &str) -> Result<(), ExtractError> {
    if dir.join("manifest.json").exists() {
        return Err(ExtractError::Refused(format!(
            "extract {id} already exists for these table versions (same spec, same bytes): {}",
            dir.display()
        )));
    }
    Ok(())
}

/// The directory an extract is written into before it is renamed to its final name (hidden,
/// so [`crate::list`] never shows it); removed when dropped unless published.
struct Staging {
    path: PathBuf,
    dir: PathBuf,
    published: bool,
}

impl Staging {
    /// A fresh staging directory beside `dir`, after removing what earlier attempts of the
    /// same extract that were killed left (their staging directories, or a final directory
    /// without a manifest, which versions before the staging wrote).
    fn create(dir: &Path) -> Result<Staging, ExtractError> {
        let project = dir
            .parent()
            .ok_or_else(|| ExtractError::Data("an extract directory without a parent".into()))?;
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        std::fs::create_dir_all(project).map_err(ExtractError::io(project))?;
        let prefix = format!(".{id}.partial-");
        for entry in std::fs::read_dir(project)
            .map_err(ExtractError::io(project))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let stale = entry.path();
                std::fs::remove_dir_all(&stale).map_err(ExtractError::io(&stale))?;
                tracing::info!(dir = %stale.display(), "removed what an interrupted extract left");
            }
        }
        if dir.is_dir() && !dir.join("manifest.json").exists() {
            std::fs::remove_dir_all(dir).map_err(ExtractError::io(dir))?;
        }
        let path = project.join(format!("{prefix}{}", std::process::id()));
        std::fs::create_dir(&path).map_err(ExtractError::io(&path))?;
        Ok(Staging {
            path,
            dir: dir.to_path_buf(),
            published: false,
        })
    }

    /// Renames the staging directory to the extract's own name, durably; refused when the
    /// extract appeared meanwhile (another `create` of the same spec and versions).
    fn publish(mut self, id: &str) -> Result<(), ExtractError> {
        crate::sync_dir(&self.path)?;
        refuse_existing(&self.dir, id)?;
        std::fs::rename(&self.path, &self.dir).map_err(ExtractError::io(&self.dir))?;
        self.published = true;
        if let Some(project) = self.dir.parent() {
            crate::sync_dir(project)?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn kind_of(spec: &Spec, column: &str) -> ColumnKind {
    spec.columns
        .iter()
        .find(|(n, _)| n == column)
        .map_or(ColumnKind::Plain, |(_, k)| *k)
}

/// The extract id: the same spec, table versions and project key give the same id.
fn extract_id(spec: &Spec, versions: &BTreeMap<String, i64>, key_id: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(spec.hash.as_bytes());
    for (table, version) in versions {
        hasher.update(format!("{table}={version};").as_bytes());
    }
    hasher.update(key_id.as_bytes());
    hasher.finalize().to_hex()[..16].to_string()
}

fn strings(column: &ArrayRef) -> Result<Vec<Option<String>>, ExtractError> {
    let text = cast(column, &DataType::Utf8)?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ExtractError::Data("a column did not turn into text".into()))?;
    Ok((0..text.len())
        .map(|i| (!text.is_null(i)).then(|| text.value(i).to_string()))
        .collect())
}

/// Rows in the order of all their columns: the same rows always give the same file.
fn sort_all(batch: &RecordBatch) -> Result<RecordBatch, ExtractError> {
    if batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let columns: Vec<SortColumn> = batch
        .columns()
        .iter()
        .map(|c| SortColumn {
            values: c.clone(),
            options: None,
        })
        .collect();
    let indices = lexsort_to_indices(&columns, None)?;
    let sorted: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &indices, None))
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), sorted)?)
}

fn write_rows(path: &Path, batch: &RecordBatch, format: OutputFormat) -> Result<(), ExtractError> {
    let file = std::fs::File::create(path).map_err(ExtractError::io(path))?;
    let synced = file.try_clone().map_err(ExtractError::io(path))?;
    match format {
        OutputFormat::Parquet => {
            let properties = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties))?;
            writer.write(batch)?;
            writer.close()?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(file);
            writer.write(batch)?;
        }
    }
    // On disk before the manifest that names its checksum is.
    synced.sync_all().map_err(ExtractError::io(path))
}
