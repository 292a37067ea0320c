//! A SQL query's rows as they are computed: what the streaming doors (Flight SQL, the
//! PostgreSQL wire protocol) send on, with the sandbox's row cap and time limit applied
//! batch by batch instead of to a collected answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use futures::Stream;

use crate::QueryError;

/// Rewrites a batch before it leaves (EXPLAIN's text, with the warehouse root hidden).
pub(crate) type BatchRewrite = Box<dyn Fn(&RecordBatch) -> Result<RecordBatch, QueryError> + Send>;

/// The rows of one sandboxed query (see `Warehouse::sql_stream`). Ends after `max_rows`
/// rows (then [`QueryStream::truncated`] is true), at the first error, or with
/// [`QueryError::Timeout`] once the query's time is up; dropping it cancels the query.
pub struct QueryStream {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    rewrite: Option<BatchRewrite>,
    rows: usize,
    max_rows: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    truncated: bool,
    done: bool,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("rows", &self.rows)
            .field("max_rows", &self.max_rows)
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl QueryStream {
    pub(crate) fn new(
        inner: SendableRecordBatchStream,
        max_rows: usize,
        deadline: tokio::time::Instant,
        timeout: Duration,
        rewrite: Option<BatchRewrite>,
    ) -> Self {
        QueryStream {
            schema: inner.schema(),
            inner,
            rewrite,
            rows: 0,
            max_rows,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            timeout,
            truncated: false,
            done: false,
        }
    }

    /// Column names and types, also when no row comes.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows handed on so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether the row cap cut the answer (known once the stream has ended).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn finish(
        &mut self,
        item: Option<Result<RecordBatch, QueryError>>,
    ) -> Poll<Option<<Self as Stream>::Item>> {
        self.done = true;
        Poll::Ready(item)
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch, QueryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return self.finish(Some(Err(QueryError::Timeout(timeout))));
        }
        loop {
            let batch = match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return self.finish(None),
                Poll::Ready(Some(Err(error))) => {
                    return self.finish(Some(Err(crate::sandbox::without_values(error))))
                }
                Poll::Ready(Some(Ok(batch))) => batch,
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let room = self.max_rows - self.rows;
            let batch = match batch.num_rows() > room {
                true => {
                    self.truncated = true;
                    batch.slice(0, room)
                }
                false => batch,
            };
            self.rows += batch.num_rows();
            let batch = match &self.rewrite {
                Some(rewrite) => match rewrite(&batch) {
                    Ok(batch) => batch,
                    Err(error) => return self.finish(Some(Err(error))),
                },
                None => batch,
            };
            if self.truncated {
                // The cap is reached: the plan's tasks stop when the inner stream drops.
                self.done = true;
                if batch.num_rows() == 0 {
                    return Poll::Ready(None);
                }
            }
            return Poll::Ready(Some(Ok(batch)));
        }
    }
}
