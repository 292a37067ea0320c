//! A Delta table's snapshot as the cluster reads it: the files of one version, listed once by
//! the client and shipped inside the plan, so the scheduler and executors never replay the
//! Delta log and never read a file the version does not reference (removed but not yet
//! vacuumed files are still in the table's directory; a directory listing would read them).
//!
//! Why not delta-rs's own codecs: deltalake 1.1's `DeltaPhysicalCodec` only knows the
//! retired `DeltaScan` node, and its `DeltaScanExec` has no codec, so a plan over a
//! `DeltaTableProvider` cannot be sent to an executor. Why not a `ListingTable`: it lists
//! directories (see above) and cannot take partition values from a pinned file list. The
//! scan built here is DataFusion's own Parquet scan (`DataSourceExec` over `ParquetSource`),
//! which Ballista's executors decode with DataFusion's codec; only the table provider needs
//! ours ([`super::ClusterCodec`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use deltalake::DeltaTable;
use serde::{Deserialize, Serialize};
use url::Url;

/// One Delta version's data files, readable without the Delta log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PinnedTable {
    /// Where the files are: `s3://bucket` or `file:///`.
    store: String,
    /// The table's partition columns, in the order of each file's `partition_values`.
    partition_columns: Vec<String>,
    files: Vec<PinnedFile>,
    /// The table's columns as the embedded engine sees them (deltalake's provider), so that
    /// answers on the cluster have the same types and column order; not serialised, as the
    /// plan carries it next to the provider.
    #[serde(skip, default = "empty_schema")]
    schema: SchemaRef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PinnedFile {
    /// Path in the store (`bucket`-relative, or absolute for the local file system).
    path: String,
    size: u64,
    /// As written in the Delta log, one per partition column; `None` for null.
    partition_values: Vec<Option<String>>,
}

fn empty_schema() -> SchemaRef {
    Arc::new(Schema::empty())
}

impl PinnedTable {
    /// The files of `table`'s loaded version, with `schema` the columns its deltalake
    /// provider answers with.
    pub fn of(table: &DeltaTable, schema: SchemaRef) -> Result<PinnedTable> {
        let snapshot = table
            .snapshot()
            .map_err(|error| DataFusionError::External(Box::new(error)))?;
        let partition_columns = snapshot.metadata().partition_columns().to_vec();
        let (store, prefix) = split_url(table.table_url())?;
        let mut files = Vec::new();
        for file in snapshot.log_data().iter() {
            if file.deletion_vector_descriptor().is_some() {
                return Err(DataFusionError::NotImplemented(format!(
                    "table {}: deletion vectors are not read on the cluster",
                    table.table_url()
                )));
            }
            let values = file.partition_values_map();
            files.push(PinnedFile {
                path: format!("{prefix}{}", file.object_store_path()),
                size: u64::try_from(file.size()).unwrap_or(0),
                partition_values: partition_columns
                    .iter()
                    .map(|column| values.get(column).cloned().flatten())
                    .collect(),
            });
        }
        Ok(PinnedTable {
            store,
            partition_columns,
            files,
            schema,
        })
    }

    /// Decodes what [`PinnedTable::encode`] wrote, with the schema the plan carries.
    pub fn decode(bytes: &[u8], schema: SchemaRef) -> Result<PinnedTable> {
        let mut table: PinnedTable = serde_json::from_slice(bytes)
            .map_err(|error| DataFusionError::Internal(format!("pinned table: {error}")))?;
        table.schema = schema;
        Ok(table)
    }

    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<()> {
        serde_json::to_writer(buf, self)
            .map_err(|error| DataFusionError::Internal(format!("pinned table: {error}")))
    }

    /// The number of data files pinned (for logs and tests).
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The file scan's table schema (data columns, then partition columns) and, for each of
    /// the table's columns, its index in it.
    fn layout(&self) -> Result<(TableSchema, Vec<usize>)> {
        let is_partition = |name: &str| self.partition_columns.iter().any(|c| c == name);
        let data: Vec<FieldRef> = self
            .schema
            .fields()
            .iter()
            .filter(|f| !is_partition(f.name()))
            .cloned()
            .collect();
        let partitions: Vec<FieldRef> = self
            .partition_columns
            .iter()
            .map(|name| {
                self.schema
                    .field_with_name(name)
                    .map(|f| Arc::new(f.clone()))
                    .or_else(|_| Ok(Arc::new(Field::new(name, DataType::Utf8, true))))
            })
            .collect::<Result<_>>()?;
        let order = self
            .schema
            .fields()
            .iter()
            .map(|field| {
                match self
                    .partition_columns
                    .iter()
                    .position(|c| c == field.name())
                {
                    Some(p) => data.len() + p,
                    None => data
                        .iter()
                        .position(|d| d.name() == field.name())
                        .unwrap_or(0),
                }
            })
            .collect();
        let file_schema = Arc::new(Schema::new(data));
        Ok((
            TableSchema::builder(file_schema)
                .with_table_partition_cols(partitions)
                .build(),
            order,
        ))
    }

    fn partitioned_files(&self, partitions: &[FieldRef]) -> Result<Vec<PartitionedFile>> {
        self.files
            .iter()
            .map(|file| {
                let values = partitions
                    .iter()
                    .zip(&file.partition_values)
                    .map(|(field, value)| partition_value(field.data_type(), value.as_deref()))
                    .collect::<Result<Vec<_>>>()?;
                Ok(
                    PartitionedFile::new(file.path.clone(), file.size)
                        .with_partition_values(values),
                )
            })
            .collect()
    }
}

/// A Delta partition value (text in the log) as a value of the column's type.
fn partition_value(data_type: &DataType, value: Option<&str>) -> Result<ScalarValue> {
    if let DataType::Dictionary(key, inner) = data_type {
        let value = partition_value(inner, value)?;
        return Ok(ScalarValue::Dictionary(key.clone(), Box::new(value)));
    }
    match value {
        None => ScalarValue::try_from(data_type),
        Some(text) => ScalarValue::try_from_string(text.to_string(), data_type),
    }
}

/// `s3://bucket/wh/t/` → (`s3://bucket`, `wh/t/`); `file:///srv/wh/t/` → (`file:///`,
/// `srv/wh/t/`).
fn split_url(url: &Url) -> Result<(String, String)> {
    let path = object_store::path::Path::from_url_path(url.path())
        .map_err(|error| DataFusionError::External(Box::new(error)))?;
    let prefix = if path.as_ref().is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let store = match url.host_str() {
        Some(host) if url.scheme() != "file" => format!("{}://{host}", url.scheme()),
        _ => format!("{}:///", url.scheme()),
    };
    Ok((store, prefix))
}

#[async_trait]
impl TableProvider for PinnedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let (table_schema, order) = self.layout()?;
        let files = self.partitioned_files(table_schema.table_partition_cols())?;
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(table_schema);
        // Files dealt round-robin, largest first, over the session's partitions.
        let groups_wanted = state.config().target_partitions().clamp(1, files.len());
        let mut sorted = files;
        sorted.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); groups_wanted];
        for (index, file) in sorted.into_iter().enumerate() {
            groups[index % groups_wanted].push(file);
        }
        let indices = match projection {
            Some(p) => p.iter().map(|&i| order[i]).collect(),
            None => order,
        };
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(&self.store)?, source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(Some(indices))?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_store_and_prefix() {
        let s3 = Url::parse("s3://bucket/wh/vaccinations/").unwrap();
        assert_eq!(
            split_url(&s3).unwrap(),
            ("s3://bucket".to_string(), "wh/vaccinations/".to_string())
        );
        let local = Url::parse("file:///srv/wh/vaccinations/").unwrap();
        assert_eq!(
            split_url(&local).unwrap(),
            ("file:///".to_string(), "srv/wh/vaccinations/".to_string())
        );
    }

    #[test]
    fn partition_values_take_the_column_type() {
        assert_eq!(
            partition_value(&DataType::Int32, Some("1980")).unwrap(),
            ScalarValue::Int32(Some(1980))
        );
        assert_eq!(
            partition_value(&DataType::Int32, None).unwrap(),
            ScalarValue::Int32(None)
        );
    }
}
