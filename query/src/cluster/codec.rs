//! The logical codec the client, the scheduler and the executors share: Ballista's own, plus
//! the two table providers a vaxlake plan holds ([`PinnedTable`], [`ReferenceTable`]).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::TableProvider;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion_proto::logical_plan::LogicalExtensionCodec;

use super::{PinnedTable, ReferenceTable};
use crate::reference::ReferenceTables;

/// First byte of an encoded provider: which of ours it is.
const PINNED: u8 = b'P';
const REFERENCE: u8 = b'R';

/// See the module documentation.
#[derive(Debug)]
pub struct ClusterCodec {
    ballista: BallistaLogicalExtensionCodec,
    reference: ReferenceTables,
}

impl ClusterCodec {
    /// Loads the reference tables compiled into this binary, which the codec hands out by
    /// name.
    pub fn new() -> std::result::Result<ClusterCodec, crate::QueryError> {
        Ok(ClusterCodec::with_reference(ReferenceTables::load()?))
    }

    /// A codec over reference tables already loaded (a warehouse's own).
    pub(crate) fn with_reference(reference: ReferenceTables) -> ClusterCodec {
        ClusterCodec {
            ballista: BallistaLogicalExtensionCodec::default(),
            reference,
        }
    }
}

impl LogicalExtensionCodec for ClusterCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match buf.split_first() {
            Some((&PINNED, rest)) => Ok(Arc::new(PinnedTable::decode(rest, schema)?)),
            Some((&REFERENCE, rest)) => {
                let name = std::str::from_utf8(rest)
                    .map_err(|_| DataFusionError::Internal("reference table name".into()))?;
                let table = self
                    .reference
                    .tables
                    .iter()
                    .find(|(known, _)| *known == name)
                    .ok_or_else(|| {
                        DataFusionError::Plan(format!(
                            "reference table {name} is not in this binary: run the same vaxlake \
                             version on the cluster as on the client"
                        ))
                    })?;
                Ok(Arc::new(ReferenceTable::new(name, table.1.clone())))
            }
            _ => self
                .ballista
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(pinned) = node.downcast_ref::<PinnedTable>() {
            buf.push(PINNED);
            return pinned.encode(buf);
        }
        if let Some(reference) = node.downcast_ref::<ReferenceTable>() {
            buf.push(REFERENCE);
            buf.extend_from_slice(reference.name().as_bytes());
            return Ok(());
        }
        self.ballista
            .try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.ballista.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.ballista.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.ballista.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udwf(node, buf)
    }
}
