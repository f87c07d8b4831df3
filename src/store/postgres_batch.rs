//! PostgreSQL: the hottest single-row statements are served in batches.
//!
//! Each lookup of a record read on every request (access and refresh tokens, codes, sessions, users) and
//! each lone access token (`client_credentials`, token exchange) used to be its own statement, and the
//! database server's per-statement and per-commit work was what limited those requests. Now requests
//! queue to one task per kind, which serves everything that queued up while its previous statement ran
//! with a single statement (one round trip; for writes one commit) and answers each request. The batch
//! grows with the load, and an idle server still runs each request at once. Nothing is acknowledged
//! before its statement has committed; a batch of writes the database refuses is retried row by row,
//! so one bad row fails alone.

use std::collections::HashMap;
use std::future::Future;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::queries as q;
use super::{StoreError, StoreResult, to_json};
use crate::model::AccessToken;

/// The most requests one statement serves.
const MAX_BATCH: usize = 256;

type Reply<R> = oneshot::Sender<StoreResult<R>>;

/// Requests of one kind, queued to one task that serves them in batches.
pub(super) struct Batcher<T, R> {
    queue: mpsc::UnboundedSender<(T, Reply<R>)>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the task; `serve` answers a batch, one outcome per request in order. The task ends when
    /// the batcher and its clones are dropped.
    fn start<F, Fut>(serve: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<StoreResult<R>>> + Send,
    {
        let (queue, mut queued) = mpsc::unbounded_channel::<(T, Reply<R>)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (requests, replies): (Vec<T>, Vec<Reply<R>>) = batch.drain(..).unzip();
                for (reply, outcome) in replies.into_iter().zip(serve(requests).await) {
                    let _ = reply.send(outcome);
                }
            }
        });
        Self { queue }
    }

    /// Queues `request` and waits for its outcome.
    pub(super) async fn call(&self, request: T) -> StoreResult<R> {
        let (reply, outcome) = oneshot::channel();
        let stopped = || StoreError::Io("database error: a batching task has stopped".into());
        self.queue.send((request, reply)).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// A lone access token to insert (by its hash), unless its grant has been revoked: answers whether it
/// went in.
pub(super) type LoneAccessTokens = Batcher<(String, AccessToken), bool>;

pub(super) fn lone_access_tokens(pool: PgPool) -> LoneAccessTokens {
    Batcher::start(move |rows: Vec<(String, AccessToken)>| {
        let pool = pool.clone();
        async move {
            match insert(&pool, &rows).await {
                Ok(inserted) => rows.iter().map(|(hash, _)| Ok(inserted.contains(hash))).collect(),
                Err(e) if rows.len() == 1 => vec![Err(e)],
                // The server is unreachable or the pool exhausted: every row would wait for it again.
                Err(e) if !matches!(e, StoreError::Database(sqlx::Error::Database(_))) => {
                    rows.iter().map(|_| Err(StoreError::Io(e.to_string()))).collect()
                }
                // The database refused the statement (say a client deleted meanwhile): one row at a time,
                // so that only the offending one fails.
                Err(_) => {
                    let mut outcomes = Vec::with_capacity(rows.len());
                    for row in &rows {
                        outcomes.push(insert(&pool, std::slice::from_ref(row)).await.map(|i| !i.is_empty()));
                    }
                    outcomes
                }
            }
        }
    })
}

/// One statement for `rows`; returns the hashes of the rows inserted.
async fn insert(pool: &PgPool, rows: &[(String, AccessToken)]) -> StoreResult<Vec<String>> {
    let text = |f: fn(&(String, AccessToken)) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let number = |f: fn(&AccessToken) -> Option<i64>| rows.iter().map(|(_, t)| f(t)).collect::<Vec<_>>();
    let inserted = sqlx::query_scalar(q::INSERT_ACCESS_TOKENS_PG)
        .bind(text(|(hash, _)| Some(hash.clone())))
        .bind(text(|(_, t)| Some(t.client_id.as_str().to_owned())))
        .bind(text(|(_, t)| t.user_id.clone()))
        .bind(text(|(_, t)| Some(t.scope.to_string())))
        .bind(text(|(_, t)| t.grant_id.clone()))
        .bind(number(|t| Some(t.expires_at)))
        .bind(text(|(_, t)| t.claims.as_ref().map(to_json)))
        .bind(text(|(_, t)| t.jkt.clone()))
        .bind(text(|(_, t)| (!t.audience.is_empty()).then(|| to_json(&t.audience))))
        .bind(number(|t| t.issued_at))
        .fetch_all(pool)
        .await?;
    Ok(inserted)
}

/// Records looked up by a text key, many keys per statement: `sql` takes the keys as `$1::text[]`
/// (`= ANY`, an index lookup per key whatever the batch's size) and returns each row's key in the
/// column `key`. Whether a record is live (expiry, owner) is for the caller to check against its own
/// request. A row that cannot be decoded fails only the requests that asked for it.
pub(super) type Lookups<R> = Batcher<String, Option<R>>;

pub(super) fn lookups<R: Clone + Send + 'static>(
    pool: PgPool,
    sql: &'static str,
    key: &'static str,
    decode: fn(&PgRow) -> StoreResult<R>,
) -> Lookups<R> {
    Batcher::start(move |keys: Vec<String>| {
        let pool = pool.clone();
        async move {
            let rows = match sqlx::query(sql).bind(&keys).fetch_all(&pool).await {
                Ok(rows) => rows,
                Err(e) => return keys.iter().map(|_| Err(StoreError::Io(format!("database error: {e}")))).collect(),
            };
            let mut found = HashMap::with_capacity(rows.len());
            for row in &rows {
                match row.try_get::<String, _>(key) {
                    Ok(k) => found.insert(k, decode(row).map_err(|e| e.to_string())),
                    Err(e) => return keys.iter().map(|_| Err(StoreError::Io(e.to_string()))).collect(),
                };
            }
            let answer = |k: &String| match found.get(k) {
                Some(Ok(record)) => Ok(Some(record.clone())),
                Some(Err(e)) => Err(StoreError::Io(e.clone())),
                None => Ok(None),
            };
            keys.iter().map(answer).collect()
        }
    })
}
