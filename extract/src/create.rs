//! `vaxlake extract create`: read the spec's rows through the read-only SQL sandbox, drop
//! opted-out persons, re-key every key column to the project, reach k-anonymity, and write
//! the files and the manifest under `<warehouse>/extracts/<project>/<extract-id>/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The extracts' directory of a local warehouse.
pub fn extracts_dir(warehouse: &Warehouse) -> Result<PathBuf, ExtractError> {
    warehouse
        .root()
        .to_file_path()
        .map(|root| root.join("extracts"))
        .map_err(|()| {
            ExtractError::Refused(
                "extracts are written next to a warehouse on the local file system".into(),
            )
        })
}

/// Creates the extract `spec` describes (see the module documentation). Refused when k
/// cannot be reached within the spec's suppression share, or when the same extract exists.
pub async fn create(
    warehouse_location: &str,
    spec: &Spec,
    key: &MasterKey,
    options: &CreateOptions,
) -> Result<Created, ExtractError> {
    // The opt-out list is not among the tables analysts see: opened here on purpose.
    let tables = vaxlake_query::DEFAULT_TABLES
        .iter()
        .copied()
        .chain(["optout"]);
    let warehouse = Warehouse::open(
        warehouse_location,
        QueryOptions::default()
            .with_max_rows(1 << 40)
            .with_tables(tables),
    )
    .await?;
    let versions = warehouse.versions();
    let needed = match spec.table.as_str() {
        "antigen_doses" => "vaccinations",
        other => other,
    };
    if !versions.contains_key(needed) {
        return Err(ExtractError::Refused(format!(
            "the warehouse has no {needed} table yet"
        )));
    }
    let stored_key = warehouse_key_id(&warehouse).await?;
    if stored_key.as_deref().is_some_and(|id| id != key.key_id()) {
        return Err(ExtractError::Refused(
            "the key given is not the warehouse's key (its key id differs): extracts need the key the warehouse was written with".into(),
        ));
    }
    let project_key = ProjectKey::new(key, &spec.project);
    let id = extract_id(spec, &versions, project_key.key_id());
    let dir = extracts_dir(&warehouse)?.join(&spec.project).join(&id);
    if dir.join("manifest.json").exists() {
        return Err(ExtractError::Refused(format!(
            "extract {id} already exists for these table versions (same spec, same bytes): {}",
            dir.display()
        )));
    }

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
    let removed = count(
        &warehouse,
        &format!(
            "SELECT count(*) FROM {} WHERE {predicate} AND {objecting}",
            spec.table
        ),
    )
    .await?;
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

    // Files, then the manifest naming their checksums.
    std::fs::create_dir_all(&dir).map_err(ExtractError::io(&dir))?;
    let file_name = match options.format {
        OutputFormat::Parquet => "part-00000.parquet",
        OutputFormat::Csv => "part-00000.csv",
    };
    let path = dir.join(file_name);
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
            "read": rows_read + removed as usize,
            "removed_opt_out": removed,
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
        "created_by": options.by,
        "created_at": created_at,
        "expires_at": expires,
    });
    let manifest_path = dir.join("manifest.json");
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| ExtractError::Data(e.to_string()))?;
    std::fs::write(&manifest_path, text + "\n").map_err(ExtractError::io(&manifest_path))?;
    tracing::info!(extract = %id, project = %spec.project, rows = sorted.num_rows(), "extract created");
    Ok(Created { id, dir, manifest })
}

fn kind_of(spec: &Spec, column: &str) -> ColumnKind {
    spec.columns
        .iter()
        .find(|(n, _)| n == column)
        .map_or(ColumnKind::Plain, |(_, k)| *k)
}

/// The extract id: the same spec, table versions and project key give the same id.
fn extract_id(
    spec: &Spec,
    versions: &std::collections::BTreeMap<String, i64>,
    key_id: &str,
) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(spec.hash.as_bytes());
    for (table, version) in versions {
        hasher.update(format!("{table}={version};").as_bytes());
    }
    hasher.update(key_id.as_bytes());
    hasher.finalize().to_hex()[..16].to_string()
}

async fn warehouse_key_id(warehouse: &Warehouse) -> Result<Option<String>, ExtractError> {
    let root = warehouse
        .root()
        .to_file_path()
        .map_err(|()| ExtractError::Refused("a local warehouse is needed".into()))?;
    let log = root.join("vaccinations").join("_delta_log");
    let Ok(entries) = std::fs::read_dir(&log) else {
        return Ok(None);
    };
    // The newest metadata action names the key id (`vaxlake.keyId`).
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in files.iter().rev() {
        let text = std::fs::read_to_string(file).map_err(ExtractError::io(file))?;
        for line in text.lines() {
            if let Ok(action) = serde_json::from_str::<Value>(line) {
                if let Some(id) = action["metaData"]["configuration"]["vaxlake.keyId"].as_str() {
                    return Ok(Some(id.to_string()));
                }
            }
        }
    }
    Ok(None)
}

async fn count(warehouse: &Warehouse, sql: &str) -> Result<u64, ExtractError> {
    let answer = warehouse.sql(sql).await?.to_json()?;
    Ok(answer["rows"][0][0].as_u64().unwrap_or(0))
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
    Ok(())
}
